"""The ``window`` stage of the project's real ``dvc.yaml``: DVC builds the merged view from the
drops ``data/current.yaml`` names, reruns exactly when they change, and skips it otherwise."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.foreign import write_delta, write_snapshot
from vsearch.contracts import read_table
from vsearch.data import dvc
from vsearch.data.ingest import ingest_drop
from vsearch.settings import load_settings

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
DAY0 = datetime.now(UTC) - timedelta(days=3)


def test_dvc_window_stage_follows_the_window_drops(
    scratch_repo: Path, tmp_path: Path, params_path: Path
) -> None:
    shutil.copy(REPO_ROOT / "dvc.yaml", scratch_repo / "dvc.yaml")
    (scratch_repo / "data").mkdir()  # dvc.yaml reads it: a clone has the committed one
    shutil.copy(REPO_ROOT / "data" / "current.yaml", scratch_repo / "data" / "current.yaml")
    shutil.copytree(
        REPO_ROOT / "src",
        scratch_repo / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    s = load_settings(params_path)
    s.validation.data_docs = False
    (scratch_repo / "params.yaml").write_text(yaml.safe_dump(s.model_dump(mode="json")))
    subprocess.run(["git", "add", "-A"], cwd=scratch_repo, check=True, capture_output=True)

    shop = write_snapshot(tmp_path / "s1", drop_id="s1", start=DAY0)
    ingest_drop(tmp_path / "s1", s, scratch_repo)
    lock = yaml.safe_load((scratch_repo / "dvc.lock").read_text())["stages"]["window"]
    assert [o["path"] for o in lock["outs"]] == ["data/window", "data/window.truth"]
    window = lock["params"]["data/current.yaml"]["window"]
    assert [w["drop"] for w in window] == ["s1"]
    assert window[0]["dvc_hash"] == dvc.content_hash(scratch_repo / "data" / "raw" / "s1")
    assert dvc.status(["window"], scratch_repo) == {}  # built by DVC: up to date

    write_delta(shop, tmp_path / "d1", drop_id="d1", start=DAY0 + timedelta(days=1))
    ingest_drop(tmp_path / "d1", s, scratch_repo)
    view = json.loads((scratch_repo / "data" / "window" / "drop.json").read_text())
    assert [w["drop"] for w in view["window"]] == ["s1", "d1"]
    assert dvc.status(["window"], scratch_repo) == {}
    lock = yaml.safe_load((scratch_repo / "dvc.lock").read_text())["stages"]["window"]
    assert [w["drop"] for w in lock["params"]["data/current.yaml"]["window"]] == ["s1", "d1"]

    # A window of one drop's clicks: the selection changes, so DVC sees the stage as changed.
    current = scratch_repo / "data" / "current.yaml"
    body = yaml.safe_load(current.read_text())
    body["window"][0]["clicks"] = False
    current.write_text(yaml.safe_dump(body, sort_keys=False))
    assert "window" in dvc.status(["window"], scratch_repo)


def test_window_truth_merges_every_drops_truth_or_marks_none(
    scratch_repo: Path, tmp_path: Path, params_path: Path, tiny_world: tuple[Path, Path]
) -> None:
    """The window's truth covers every window drop (the held-out queries and the catalog span
    them); a drop without truth, or without a truth folder at all (ingested by an older
    vsearch), leaves only the no-truth marker."""
    from vsearch.contracts import ITEM_TRUTH, NO_TRUTH_FILE, QUERY_TRUTH, has_truth
    from vsearch.data.ingest import select_window
    from vsearch.world import generate_world

    s = load_settings(params_path)
    s.validation.data_docs = False
    drop, truth = tiny_world
    ingest_drop(drop, s, scratch_repo, truth=truth)
    later, later_truth = tmp_path / "w2", tmp_path / "w2.truth"
    generate_world(s.world, later, later_truth, seed=4, items=60, queries=40)
    manifest = json.loads((later / "drop.json").read_text())
    manifest.update(kind="delta", created_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    (later / "drop.json").write_text(json.dumps(manifest))
    ingest_drop(later, s, scratch_repo, truth=later_truth, accept_volume=True)
    merged = scratch_repo / s.ingest.window_truth_dir

    assert has_truth(merged)
    queries = read_table(merged, QUERY_TRUTH)["query_id"]
    expect = {
        *read_table(truth, QUERY_TRUTH)["query_id"],
        *read_table(later_truth, QUERY_TRUTH)["query_id"],
    }
    assert set(queries) == expect
    items = set(read_table(merged, ITEM_TRUTH)["item_id"])
    assert items >= set(read_table(truth, ITEM_TRUTH)["item_id"])

    shutil.rmtree(scratch_repo / s.ingest.truth_dir / manifest["drop_id"])  # an older project
    (scratch_repo / s.ingest.current_file).unlink()
    select_window(s, scratch_repo)
    assert [p.name for p in merged.iterdir()] == [NO_TRUTH_FILE]
    assert manifest["drop_id"] in (merged / NO_TRUTH_FILE).read_text()
