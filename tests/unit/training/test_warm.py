"""Warm start: the champion's weights load when the architecture matches, category rows are
mapped, and anything else trains from scratch and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests import kit
from vsearch.errors import BadInput
from vsearch.model.export import save_model
from vsearch.model.net import NetConfig, VSearchNet
from vsearch.training.loop import _Trainer
from vsearch.training.stage import resolve_warm_start, run_training
from vsearch.training.warm import apply_warm_start, read_warm_start

pytestmark = pytest.mark.unit


def _champion(settings, categories, tmp_path: Path, seed: int = 123, **config) -> Path:
    """A saved model of ``settings``' shape (random weights of another seed) as the champion."""
    torch.manual_seed(seed)
    net_config = NetConfig.from_settings(settings.model, list(categories))
    net = VSearchNet(NetConfig.from_dict({**net_config.to_dict(), **config}))
    out = tmp_path / "champion"
    save_model(net, out, {"name": "vsearch-net"})
    return out


def test_warm_start_loads_the_champions_weights_before_the_first_step(
    tiny_data, make_settings, tmp_path: Path
) -> None:
    s = make_settings()
    folder = _champion(s, tiny_data.categories, tmp_path)
    warm = read_warm_start(folder, "champion v7")
    trainer = _Trainer(s, tiny_data, torch.device("cpu"), warm)
    assert trainer.warm_start == "champion v7"
    got = trainer.net.state_dict()
    assert set(got) == set(warm.state)
    for name, value in warm.state.items():
        assert torch.equal(got[name], value), name
    cold = _Trainer(s, tiny_data, torch.device("cpu"))
    assert cold.warm_start.startswith("scratch: ")
    trunk = next(k for k in warm.state if k.startswith("backbone.") and k.endswith("weight"))
    assert not torch.equal(cold.net.state_dict()[trunk], warm.state[trunk])


def test_a_changed_architecture_trains_from_scratch_and_says_why(
    tiny_data, make_settings, tmp_path: Path
) -> None:
    s = make_settings()
    folder = _champion(s, tiny_data.categories, tmp_path, embedding_dim=8)
    trainer = _Trainer(s, tiny_data, torch.device("cpu"), read_warm_start(folder, "champion v2"))
    assert trainer.warm_start.startswith("scratch: the architecture changed since champion v2")
    assert "embedding_dim" in trainer.warm_start
    torch.manual_seed(s.project.seed)  # a scratch run is the same as one never offered a model
    fresh = VSearchNet(trainer.config).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in trainer.net.state_dict().items())


def test_changed_categories_keep_the_rows_both_know(tmp_path: Path) -> None:
    old = kit.tiny_net(("bag", "cup", "hat"), seed=1)
    save_model(old, tmp_path / "champion")
    warm = read_warm_start(tmp_path / "champion")
    new = kit.tiny_net(("cup", "hat", "shoe"), seed=2)
    fresh = {k: v.clone() for k, v in new.state_dict().items()}
    assert apply_warm_start(new, warm) == str(tmp_path / "champion")
    w, b = new.category_head.fc.weight, new.category_head.fc.bias
    assert torch.equal(w[0], old.category_head.fc.weight[1])  # cup
    assert torch.equal(w[1], old.category_head.fc.weight[2])  # hat
    assert torch.equal(b[:2], old.category_head.fc.bias[1:])
    assert torch.equal(w[2], fresh["category_head.fc.weight"][2])  # shoe starts fresh
    assert torch.equal(b[2], fresh["category_head.fc.bias"][2])
    others = [k for k in warm.state if not k.startswith("category_head.")]
    assert others and all(torch.equal(new.state_dict()[k], warm.state[k]) for k in others)


def test_resolve_says_why_a_run_starts_from_scratch(make_settings, tmp_path: Path) -> None:
    s = make_settings()
    folder = _champion(s, ("a", "b"), tmp_path)
    off = make_settings(warm_start=False)
    assert resolve_warm_start(off, warm_from=folder, track=True, comparison=False) == (
        "scratch: train.warm_start is false"
    )
    got = resolve_warm_start(s, warm_from=folder, track=False, comparison=True)
    assert got.startswith("scratch: comparison runs")
    got = resolve_warm_start(s, warm_from=None, track=False, comparison=False)
    assert got.startswith("scratch: not tracked")
    assert resolve_warm_start(s, warm_from=folder, track=False, comparison=False).label == str(
        folder
    )
    with pytest.raises(BadInput, match="--warm-from"):
        resolve_warm_start(s, warm_from=tmp_path / "nope", track=False, comparison=False)


def test_run_training_reports_what_it_started_from(
    tiny_world, tiny_data, make_settings, tmp_path: Path
) -> None:
    s = make_settings(epochs=1)
    folder = _champion(s, tiny_data.categories, tmp_path)
    report = run_training(
        s,
        tiny_world.drop,
        tiny_world.mining,
        tmp_path / "run",
        write_embeddings=False,
        track=False,
        warm_from=folder,
    )
    assert report["metrics"]["warm_start"] == str(folder)
