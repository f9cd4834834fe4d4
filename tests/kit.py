"""The test kit: one tiny settings builder, one tiny network, one writer of mining outputs.

Why one kit: unit, integration and end-to-end tests all need "the project at toy sizes"
(seconds per training run on a CPU), a small untrained network and a mining folder without
running mining. Written once here, a change of the settings or of the mining outputs is made
in one place, and every test exercises the same toy configuration.

Import it as ``from tests.kit import ...`` (the repository root is on ``sys.path`` when the
suite runs with ``python -m pytest``, as the Makefile does).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from vsearch.mined import EDGE_COLUMNS, write_outputs
from vsearch.model.net import NetConfig, VSearchNet
from vsearch.settings import ServicesSettings, Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_SEED = 11  # project.seed of settings built from scratch
TINY_BITS = 32
SERVICE_START_TIMEOUT_S = 120  # a test service on a busy 2-core machine
#: The tiny network's shape (NetConfig keyword arguments besides the categories).
TINY_NET: dict[str, Any] = {
    "widths": (8, 16, 24, 32),
    "input_size": 64,
    "frame_size": 64,
    "crop_size": 32,
    "embedding_dim": 16,
    "bits": TINY_BITS,
    "box_hidden": 8,
}
TINY_LOCALIZER = (4, 8, 8, 16)  # the box head's own trunk in tiny settings
TINY_BACKGROUND_SIDE = 96  # px the background photos are kept at (the default costs seconds)


def tiny_settings(base: Settings | None = None, **train: object) -> Settings:
    """Settings at toy sizes: a 64 px tiny network, two epochs of two steps, no time budget.

    Args:
        base: settings to shrink (a copy; their seed, paths and services are kept); default:
            fresh defaults with ``project.seed`` :data:`TINY_SEED`.
        train: overrides of the ``train`` section (``epochs=1``, ``val_share=0.2``, ...).
    """
    if base is None:
        s = Settings()
        s.project.seed = TINY_SEED
    else:
        s = base.model_copy(deep=True)
    s.project.device = "cpu"
    s.project.threads = 1
    s.index.bits = TINY_BITS
    m = s.model
    m.widths = TINY_NET["widths"]
    m.localizer_widths = TINY_LOCALIZER
    m.input_size = TINY_NET["input_size"]
    m.frame_size = TINY_NET["frame_size"]
    m.crop_size = TINY_NET["crop_size"]
    m.embedding_dim = TINY_NET["embedding_dim"]
    m.bits = TINY_NET["bits"]
    m.box_hidden = TINY_NET["box_hidden"]
    t = s.train
    t.batch_size = 12
    t.epochs = 2
    t.steps_per_epoch = 2
    t.time_budget_s = None
    t.warmup_steps = 1
    t.decode_workers = 1
    t.augment.background_side = TINY_BACKGROUND_SIDE
    e = s.evaluation
    e.examples = 2
    e.latency_queries = 2
    e.latency_warmup = 1
    e.decode_workers = 1
    for key, value in train.items():
        setattr(t, key, value)
    return s


def tiny_project(base: Settings, services: ServicesSettings) -> Settings:
    """:func:`tiny_settings` of ``base`` on the session's live servers, ready for the promotion:
    no Bento build (it has its own test), a short service load run."""
    s = tiny_settings(base)
    s.services = services
    s.promotion.build_bento = False
    s.promotion.load_requests = 6
    s.promotion.load_photos = 3
    return s


def scratch_project(root: Path, settings: Settings) -> Path:
    """Make ``root`` (a git + DVC repo) a data project like a fresh clone: the stage DAG, its
    code deps, the committed ``data/current.yaml`` and ``settings`` as params.yaml.

    Returns:
        The params.yaml written.
    """
    shutil.copy(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")
    (root / "data").mkdir(exist_ok=True)  # dvc.yaml reads it: a clone has the committed one
    shutil.copy(REPO_ROOT / "data" / "current.yaml", root / "data" / "current.yaml")
    shutil.copytree(
        REPO_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
    return params


def tiny_net(
    categories: tuple[str, ...] = ("a", "b"), *, seed: int = 0, **config: Any
) -> VSearchNet:
    """An untrained :data:`TINY_NET` network (train mode), seeded; ``config`` overrides shape."""
    torch.manual_seed(seed)
    return VSearchNet(NetConfig(categories=tuple(categories), **{**TINY_NET, **config}))


def train_data(drop: Path, labels: Any, settings: Settings) -> Any:
    """:func:`vsearch.training.data.build_train_data` with ``settings``' sizes, one worker."""
    from vsearch.training.data import build_train_data

    return build_train_data(
        drop,
        labels,
        settings.model.input_size,
        split=settings.split,
        val_share=settings.train.val_share,
        matte_threshold=settings.train.augment.matte_threshold,
        seed=settings.project.seed,
        workers=1,
        signals=settings.train.signals,
    )


def write_mining_outputs(
    folder: Path,
    *,
    virtual_ids: pd.DataFrame,
    query_virtual_ids: pd.DataFrame | None = None,
    pairs: pd.DataFrame | None = None,
) -> Path:
    """A mining folder written by :func:`vsearch.mined.write_outputs`, from hand-made tables.

    Args:
        folder: the mining folder (created).
        virtual_ids: ``item_id, virtual_id, cluster_size``.
        query_virtual_ids: ``query_id, item_id, virtual_id, cluster_size`` (default: no rows).
        pairs: ``query_id, item_id, label, kind, weight`` (default: no rows).
    """
    empty_qv = pd.DataFrame(columns=["query_id", "item_id", "virtual_id", "cluster_size"])
    empty_pairs = pd.DataFrame(columns=["query_id", "item_id", "label", "kind", "weight"])
    write_outputs(
        folder,
        pairs=empty_pairs if pairs is None else pairs,
        virtual_ids=virtual_ids,
        query_virtual_ids=empty_qv if query_virtual_ids is None else query_virtual_ids,
        edges=pd.DataFrame(columns=list(EDGE_COLUMNS)),
        report={"counts": {"virtual_ids": int(virtual_ids["virtual_id"].nunique())}},
    )
    return folder


@contextmanager
def service_with(
    root: Path, params: Path, port: int, name: str, token: str, **serving: object
) -> Iterator[str]:
    """The project at ``root`` served on ``port`` with an admin ``token`` and ``params`` with
    these ``serving`` settings changed (written to ``params-NAME.yaml`` beside it, the log to
    ``service-NAME.log``); yields its URL and stops it after."""
    from vsearch.local.service import start_background, stop

    raw = yaml.safe_load(params.read_text())
    raw["serving"].update(serving)
    changed = root / f"params-{name}.yaml"
    changed.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = start_background(
        "127.0.0.1",
        port,
        changed,
        root,
        root / f"service-{name}.log",
        timeout_s=SERVICE_START_TIMEOUT_S,
        env={"VSEARCH_ADMIN_TOKEN": token},
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def run_quick_bench(
    script: Path, tmp_path: Path, timeout_s: float = 600
) -> tuple[list[dict[str, Any]], str]:
    """Run ``script --quick`` as ``make bench`` would (this repo's params, telemetry off, its
    temporary files under ``tmp_path``): its JSON-line figures and its stderr (the summary).
    Fails the test on a non-zero exit, with the end of its stderr."""
    import json
    import os
    import sys

    from vsearch.local.env import TELEMETRY_OFF

    env = {**os.environ, **TELEMETRY_OFF, "TMPDIR": str(tmp_path)}
    for var in ("VSEARCH_PARAMS", "VSEARCH_ROOT"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, str(script), "--quick"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()], out.stderr
