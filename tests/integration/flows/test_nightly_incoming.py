"""Incoming drops night after night, on a real Prefect server and real DVC.

A shop that is not the demo world (tests/foreign.py: its own products, backgrounds and click
model, no truth) drops a snapshot, a broken drop and a delta into the incoming folder: the
nights take them oldest first, set the broken one aside with its report and go on, and the
window view reflects the delta (changed listings, removed ones, new clicks). A night with
nothing new does nothing, and never generates the demo world. A remote (fsspec) incoming
location works the same way.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.foreign import write_delta, write_snapshot
from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES, read_ledger, read_table
from vsearch.data import dvc
from vsearch.settings import Settings, load_settings
from vsearch.validation import validate_drop

pytestmark = pytest.mark.integration

DAY0 = datetime.now(UTC) - timedelta(days=4)


def _project(root: Path, params_path: Path, incoming: str) -> tuple[Path, Settings]:
    """params.yaml of the scratch project: incoming where the test says, no Data Docs."""
    s = load_settings(params_path)
    s.ingest.incoming = incoming
    s.validation.data_docs = False
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(s.model_dump(mode="json")))
    return path, s


def _ledger(root: Path) -> list[dict]:
    return read_ledger(root / "data" / "drops.json")


def test_nights_take_incoming_drops_set_aside_bad_ones_and_idle_when_nothing_is_new(
    prefect_server: str, scratch_repo: Path, tmp_path: Path, params_path: Path
) -> None:
    from flows.nightly import incoming_flow, nightly_flow

    inbox = tmp_path / "incoming"
    params, settings = _project(scratch_repo, params_path, str(inbox))

    # A night before any drop: nothing to do, and no demo world appears.
    idle = nightly_flow(repo_root=str(scratch_repo), params=str(params))
    assert idle["nothing_to_do"] is True and idle["training"] is None
    assert not (scratch_repo / "data" / "world").exists() and _ledger(scratch_repo) == []

    shop = write_snapshot(inbox / "a-snap", drop_id="a-snap", start=DAY0)
    broken = inbox / "b-broken"
    write_snapshot(broken, drop_id="b-broken", seed=9, start=DAY0 + timedelta(days=1))
    imp = pd.read_parquet(broken / "impressions.parquet")
    imp.loc[1, "event_id"] = imp.loc[0, "event_id"]  # a duplicated event id: critical
    imp.to_parquet(broken / "impressions.parquet", index=False)
    changes = write_delta(shop, inbox / "c-delta", drop_id="c-delta", start=DAY0 + timedelta(2))
    (inbox / "_uploading").mkdir()  # an upload in progress is left alone

    taken = incoming_flow(repo_root=str(scratch_repo), params=str(params))

    assert [r["drop_id"] for r in taken["ingested"]] == ["a-snap", "c-delta"]  # oldest first
    ledger = _ledger(scratch_repo)
    assert [(r["drop_id"], r["kind"]) for r in ledger] == [
        ("a-snap", "snapshot"),
        ("c-delta", "delta"),
    ]
    assert all(
        r["dvc_hash"] == dvc.content_hash(scratch_repo / "data" / "raw" / r["drop_id"])
        for r in ledger
    )
    (rejected,) = taken["rejected"]
    assert rejected["drop"] == "b-broken" and "event_id" in rejected["reason"]
    aside = inbox / "rejected" / "b-broken"
    assert (aside / "impressions.parquet").is_file()  # the data is kept, never deleted
    assert "event_id" in (aside / "rejected.txt").read_text()
    assert json.loads((aside / "b-broken.json").read_text())["success"] is False
    assert not (scratch_repo / "data" / "raw" / "b-broken").exists()
    assert sorted(p.name for p in (inbox / "ingested").iterdir()) == ["a-snap", "c-delta"]
    assert sorted(p.name for p in inbox.iterdir()) == ["_uploading", "ingested", "rejected"]

    # The window view: latest listing rows, removed listings gone, both click logs.
    view = scratch_repo / "data" / "window"
    cat = read_table(view, CATALOG).set_index("item_id")
    assert not set(changes["removed"]) & set(cat.index)
    assert set(changes["new"]) <= set(cat.index)
    for item in changes["changed"]:
        assert cat.loc[item, "title"].startswith("SALE ")
        assert cat.loc[item, "image"].startswith("c-delta/")
    queries = read_table(view, QUERIES)
    assert {q.split("-q")[0] for q in queries["query_id"]} == {"a-snap", "c-delta"}
    imp = read_table(view, IMPRESSIONS)
    assert imp["item_id"].isin(cat.index).all()
    current = yaml.safe_load((scratch_repo / "data" / "current.yaml").read_text())
    assert current["drop"] == "c-delta"
    assert [w["drop"] for w in current["window"]] == ["a-snap", "c-delta"]
    # the view is itself a valid drop: every stage reads it like one
    checked = validate_drop(view, settings.validation)
    assert checked.success, [f.label for f in checked.critical_failures]

    # A night with nothing new: nothing happens, and it says so. A folder that repeats an
    # ingested drop id is set aside with the reason, never read (drops are immutable).
    before = (scratch_repo / "data" / "drops.json").read_text()
    write_snapshot(inbox / "a-again", drop_id="a-snap", seed=4, start=DAY0 + timedelta(days=3))
    again = nightly_flow(repo_root=str(scratch_repo), params=str(params))
    (repeated,) = again["rejected"]
    assert repeated["drop"] == "a-again" and "already ingested" in repeated["reason"]
    assert "already ingested" in (inbox / "rejected" / "a-again" / "rejected.txt").read_text()
    assert not (inbox / "a-again").exists()
    assert again["nothing_to_do"] is True and again["ingested"] == []
    assert again["training"] is None and again["promotion"] is None
    assert (scratch_repo / "data" / "drops.json").read_text() == before
    assert not (scratch_repo / "data" / "world").exists()


def test_remote_incoming_location_by_fsspec_url(
    prefect_server: str, scratch_repo: Path, tmp_path: Path, params_path: Path
) -> None:
    import fsspec

    from flows.nightly import incoming_flow

    url = f"memory://vsearch-{uuid.uuid4().hex[:8]}/drops"
    params, _ = _project(scratch_repo, params_path, url)
    local = tmp_path / "made"
    write_snapshot(local, drop_id="remote-snap", start=DAY0)
    fs, root = fsspec.core.url_to_fs(url)
    fs.put(str(local) + "/", f"{root}/remote-snap/", recursive=True)

    taken = incoming_flow(repo_root=str(scratch_repo), params=str(params))

    assert [r["drop_id"] for r in taken["ingested"]] == ["remote-snap"]
    assert taken["ingested"][0]["source"] == f"{url}/remote-snap"  # not the local copy
    assert fs.exists(f"{root}/ingested/remote-snap/catalog.parquet")
    assert not fs.exists(f"{root}/remote-snap")
    assert (scratch_repo / "data" / "raw" / "remote-snap" / "catalog.parquet").is_file()
    scratch = scratch_repo / "data" / ".incoming"
    assert not (scratch / "remote-snap").exists()  # the local copy is gone after ingest
