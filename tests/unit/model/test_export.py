"""Export: weights + config round-trip with a fingerprint, batch >= 2 examples, EmbeddingSet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests import kit
from vsearch.index.codes import pack_signs
from vsearch.model.export import (
    WEIGHTS_FILE,
    embedding_set,
    export_program,
    fingerprint,
    input_example,
    load_model,
    save_model,
)
from vsearch.model.net import VSearchNet

pytestmark = pytest.mark.unit


def tiny_net() -> VSearchNet:
    return kit.tiny_net(seed=1).eval()


def test_save_load_round_trip_and_fingerprint(tmp_path: Path) -> None:
    net = tiny_net()
    info = save_model(net, tmp_path / "m", {"name": "tiny"})
    again, meta = load_model(tmp_path / "m")
    assert meta["fingerprint"] == info["fingerprint"] == fingerprint(net.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x)["embedding"], again(x)["embedding"])
    other = tiny_net()
    with torch.no_grad():
        other.hash_head.proj.bias.add_(1.0)
    assert fingerprint(other.state_dict()) != info["fingerprint"]


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    save_model(tiny_net(), tmp_path / "m")
    state = torch.load(tmp_path / "m" / WEIGHTS_FILE, weights_only=True)
    state["hash_head.proj.bias"] += 1
    torch.save(state, tmp_path / "m" / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="fingerprint"):
        load_model(tmp_path / "m")


def test_input_example_has_batch_of_at_least_two() -> None:
    ex = input_example(tiny_net().config)
    assert ex.shape == (2, 3, 64, 64) and ex.dtype == np.float32
    with pytest.raises(ValueError, match="batch >= 2"):
        input_example(tiny_net().config, batch=1)


def test_exported_program_keeps_a_dynamic_batch(tmp_path: Path) -> None:
    net = tiny_net()
    program = torch.export.load(str(export_program(net, tmp_path / "p.pt2")))
    x = torch.rand(3, 3, 64, 64)  # exported with a batch-2 example
    boxes, _, probs, emb, hash_logits = program.module()(x)
    ref = net.encode(x)
    assert boxes.shape == (3, 4) and probs.shape == (3, 2)
    assert torch.allclose(emb, ref["embedding"], atol=1e-5)
    assert torch.allclose(hash_logits, ref["hash_logits"], atol=1e-5)


def test_embedding_set_packs_the_hash_signs() -> None:
    net = tiny_net()
    images = (torch.rand(4, 3, 64, 64) * 255).to(torch.uint8)
    emb = embedding_set(
        net,
        ["i1", "i2", "i3", "i4"],
        ["a", "b", "a", "b"],
        images,
        {"fingerprint": "f" * 64, "name": "tiny"},
        batch_size=3,
    )
    with torch.no_grad():
        out = net.encode(images.float() / 255)
    assert emb.bits == 32 and emb.dim == 16 and len(emb) == 4
    assert np.array_equal(emb.codes, pack_signs(out["hash_logits"].numpy()))
    assert np.allclose(emb.vectors, out["embedding"].numpy(), atol=1e-5)
    assert emb.model.fingerprint == "f" * 64
