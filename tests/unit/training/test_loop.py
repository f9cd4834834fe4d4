"""The loop: a smoke run, gradients reach every head, determinism, checkpoint/resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer import Typer
from typer.testing import CliRunner

from vsearch.index.embeddings import EmbeddingSet
from vsearch.model.export import load_model
from vsearch.training.loop import _Trainer, lr_factor, resolve_device, train

pytestmark = pytest.mark.unit


def test_one_epoch_smoke_run(tiny_data, make_settings, tmp_path: Path) -> None:
    s = make_settings(epochs=1)
    res = train(s, tiny_data, tmp_path / "run", progress=False)
    assert res.steps == 2 and len(res.epochs) == 1
    row = res.epochs[0]
    assert all(np.isfinite(row[k]) for k in ("total", "proxy", "pair", "box_giou", "category"))
    assert res.checkpoint.is_file()
    net, meta = load_model(res.model_dir)
    assert meta["fingerprint"] == res.fingerprint and net.config.categories == ("bag", "cup", "hat")
    emb = EmbeddingSet.load(res.embeddings_dir)
    assert len(emb) == len(tiny_data.item_ids) and emb.bits == 32
    assert emb.model.fingerprint == res.fingerprint
    assert "val_click_recall@10" in res.metrics
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist["epochs"][0]["steps"] == 2


def test_a_small_catalog_still_gets_min_steps(tiny_data, make_settings, tmp_path: Path) -> None:
    """One pass over a few listings is one step; min_steps makes the epochs longer instead."""
    s = make_settings(epochs=2, steps_per_epoch=None, min_steps=6)
    res = train(
        s, tiny_data, tmp_path / "r", progress=False, final_check=False, write_embeddings=False
    )
    assert [row["steps"] for row in res.epochs] == [3, 3] and res.steps == 6
    s.train.min_steps = 0  # one pass per epoch
    plain = train(
        s, tiny_data, tmp_path / "p", progress=False, final_check=False, write_embeddings=False
    )
    assert plain.steps < 6


def test_every_head_gets_gradient_from_the_joint_loss(tiny_data, make_settings) -> None:
    s = make_settings()
    s.model.localizer_widths = (4, 8, 8, 16)
    tr = _Trainer(s, tiny_data, torch.device("cpu"))
    tr.train_step(0.0)
    net = tr.net
    for name, module in [
        ("backbone", net.backbone),
        ("localizer", net.localizer),
        ("box_head", net.box_head),
        ("embedding_head", net.embedding_head),
        ("hash_head", net.hash_head),
        ("category_head", net.category_head),
    ]:
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name


def test_same_seed_same_first_step(tiny_data, make_settings) -> None:
    losses = []
    for _ in range(2):
        tr = _Trainer(make_settings(), tiny_data, torch.device("cpu"))
        losses.append(tr.train_step(0.0)["total"])
    other = make_settings()
    other.project.seed = 12
    losses.append(_Trainer(other, tiny_data, torch.device("cpu")).train_step(0.0)["total"])
    assert losses[0] == losses[1] and losses[0] != losses[2]


def test_resume_continues_exactly(tiny_data, make_settings, tmp_path: Path) -> None:
    s = make_settings(epochs=2)
    quiet = {"progress": False, "final_check": False, "write_embeddings": False}
    straight = train(s, tiny_data, tmp_path / "a", **quiet)
    first = train(s, tiny_data, tmp_path / "b", max_steps=2, **quiet)  # "killed" after epoch 0
    assert first.steps == 2 and len(first.epochs) == 1
    resumed = train(s, tiny_data, tmp_path / "b", resume=True, **quiet)
    assert resumed.steps == 4 and len(resumed.epochs) == 2
    assert resumed.epochs[1]["total"] == pytest.approx(straight.epochs[1]["total"], rel=1e-6)
    assert resumed.fingerprint == straight.fingerprint  # bit-identical weights


class _RunsCode:
    """A pickle that runs code when loaded without ``weights_only`` (what a tampered
    checkpoint would carry)."""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)


def test_checkpoint_loads_weights_only_and_a_tampered_one_is_refused(
    tiny_data, make_settings, tmp_path: Path
) -> None:
    s = make_settings(epochs=2)
    quiet = {"progress": False, "final_check": False, "write_embeddings": False}
    res = train(s, tiny_data, tmp_path / "run", max_steps=2, **quiet)
    ckpt = torch.load(res.checkpoint, map_location="cpu", weights_only=True)  # plain values
    assert ckpt["step"] == 2 and isinstance(ckpt["optim"]["state"], dict)
    assert all(type(v) is float for row in ckpt["history"] for v in row.values() if v % 1)
    marker = tmp_path / "pwned"
    torch.save({**ckpt, "history": [_RunsCode(marker)]}, res.checkpoint)
    with pytest.raises(ValueError, match="not a loadable training checkpoint"):
        train(s, tiny_data, tmp_path / "run", resume=True, **quiet)
    assert not marker.exists()  # the pickle's code never ran


def test_checkpoint_is_written_atomically_and_fsynced(
    tiny_data, make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from vsearch.training import loop

    s = make_settings(epochs=1)
    quiet = {"progress": False, "final_check": False, "write_embeddings": False}
    res = train(s, tiny_data, tmp_path / "run", **quiet)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    loop._save_checkpoint(res.checkpoint, {"step": 1})
    assert any(p.startswith(str(res.checkpoint.parent / ".")) for p in synced), synced  # the file
    assert str(res.checkpoint.parent) in synced  # and its folder, after the rename
    before = res.checkpoint.read_bytes()
    with pytest.raises(Exception, match="pickle"):  # a save that fails half-way ...
        loop._save_checkpoint(res.checkpoint, {"step": 2, "bad": (x for x in ())})
    assert res.checkpoint.read_bytes() == before  # ... left the previous one whole
    assert [p.name for p in res.checkpoint.parent.iterdir() if p.name.startswith(".")] == []


def test_time_budget_stops_the_run(tiny_data, make_settings, tmp_path: Path) -> None:
    res = train(
        make_settings(epochs=50),
        tiny_data,
        tmp_path / "r",
        time_budget_s=1e-9,
        progress=False,
        final_check=False,
        write_embeddings=False,
    )
    assert res.stopped_by_budget and res.steps == 0 and res.checkpoint.is_file()


def test_oracle_flag_must_match_the_labels(tiny_data, make_settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="oracle"):
        train(make_settings(), tiny_data, tmp_path, oracle=True, progress=False)


def test_schedule_and_device() -> None:
    assert lr_factor(0, 0.0, 10) == pytest.approx(0.1)
    assert lr_factor(100, 0.5, 10) == pytest.approx(0.5)
    assert lr_factor(100, 1.0, 10) == pytest.approx(0.0)
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def test_cli_trains_and_reports(tiny_world, make_settings, tmp_path: Path) -> None:
    from vsearch.cli_support import configure
    from vsearch.training.cli import train_command

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(make_settings(epochs=1).model_dump(mode="json")))
    app = Typer()
    app.command()(train_command)
    configure(params)
    out = tmp_path / "run"
    args = [
        "--drop",
        str(tiny_world.drop),
        "--mining",
        str(tiny_world.mining),
        "--out",
        str(out),
        "--json",
        "--no-embeddings",
        "--no-mlflow",  # tracking has its own tests against a real server
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout[res.stdout.index("{") :])
    assert payload["steps"] == 2 and Path(payload["model_dir"]).is_dir()
    missing = CliRunner().invoke(app, ["--drop", str(tiny_world.drop), "--out", str(out)])
    assert missing.exit_code == 2 and "--mining" in missing.output


def test_run_training_is_the_stage_without_the_cli(
    tiny_world, make_settings, tmp_path: Path
) -> None:
    from vsearch.errors import BadInput
    from vsearch.trained import read_history
    from vsearch.training.stage import run_training

    s = make_settings(epochs=1)
    out = tmp_path / "run"
    report = run_training(
        s, tiny_world.drop, tiny_world.mining, out, write_embeddings=False, track=False
    )
    assert report["steps"] == 2 and "epochs" not in report and Path(report["model_dir"]).is_dir()
    history = read_history(out)
    assert history is not None and history["epochs"][0]["steps"] == 2
    assert read_history(tmp_path) is None
    with pytest.raises(BadInput, match="pick one"):
        run_training(
            s,
            tiny_world.drop,
            tiny_world.mining,
            out,
            oracle_truth=tiny_world.truth,
            category_only=True,
            track=False,
        )


@pytest.mark.parametrize(
    ("grad_share", "query_share", "reaches"),
    [(0.0, 0.0, False), (1.0, 0.0, True), (0.0, 1.0, True)],
)
def test_the_crop_loss_reaches_the_box_head_through_predicted_boxes(
    tiny_data, make_settings, grad_share: float, query_share: float, reaches: bool
) -> None:
    """With the box losses off, the box head learns only through the differentiable crop:
    of labelled slots cut at their predicted box, or of queries (clicks, no box label)."""
    s = make_settings(
        predicted_box_share=1.0,
        predicted_box_grad_share=grad_share,
        query_box_grad_share=query_share,
    )
    s.train.loss.box_l1 = s.train.loss.box_giou = s.train.loss.heatmap = 0.0
    tr = _Trainer(s, tiny_data, torch.device("cpu"))
    tr.train_step(0.0)
    grads = [p.grad for p in tr.net.box_head.parameters() if p.grad is not None]
    assert (sum(float(g.abs().sum()) for g in grads) > 0) == reaches
