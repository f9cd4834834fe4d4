"""The ingest flow on a real local Prefect server: good drop lands in DVC, bad drop stops it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from vsearch.data import dvc
from vsearch.errors import BadInput, GateFailed

pytestmark = pytest.mark.integration


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


async def _runs_and_artifacts(flow_name: str) -> tuple[list, list]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
    )

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name]))
        )
        arts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-report"]))
        )
    return runs, arts


def test_ingest_flow_good_then_bad_drop(
    prefect_server: str,
    tiny_world: tuple[Path, Path],
    scratch_repo: Path,
    tmp_path: Path,
    copy_drop,
    params_path: Path,
) -> None:
    from flows.ingest import ingest_flow

    drop, truth = tiny_world
    res = ingest_flow(
        drop=str(drop), truth=str(truth), params=str(params_path), repo_root=str(scratch_repo)
    )

    raw = Path(res["raw_path"])
    assert raw.parent == scratch_repo / "data" / "raw" and (raw / "catalog.parquet").is_file()
    assert res["dvc_hash"] == dvc.content_hash(raw)
    assert Path(res["report_path"]).is_file()
    assert Path(res["truth_path"]).is_dir() and dvc.dvc_file(Path(res["truth_path"])).is_file()
    assert (scratch_repo / ".dvc-storage").exists() or any(
        (scratch_repo.parent / "remote").iterdir()
    )
    runs, arts = asyncio.run(_runs_and_artifacts("ingest"))
    assert any(r.state and r.state.is_completed() for r in runs)
    assert any(res["dvc_hash"] in (a.data or "") for a in arts)

    raw_before = _tree(scratch_repo / "data" / "raw")
    bad = copy_drop(drop, tmp_path / "bad")
    imp = pd.read_parquet(bad / "impressions.parquet")
    imp.loc[1, "event_id"] = imp.loc[0, "event_id"]  # a duplicated event id: critical
    imp.to_parquet(bad / "impressions.parquet", index=False)
    with pytest.raises(GateFailed, match="event_id"):
        ingest_flow(drop=str(bad), params=str(params_path), repo_root=str(scratch_repo))
    assert _tree(scratch_repo / "data" / "raw") == raw_before

    runs, _ = asyncio.run(_runs_and_artifacts("ingest"))
    assert any(r.state and r.state.is_failed() for r in runs)

    with pytest.raises(BadInput, match="already"):  # drops are immutable once ingested
        ingest_flow(drop=str(drop), params=str(params_path), repo_root=str(scratch_repo))
    reused = ingest_flow(
        drop=str(drop), params=str(params_path), repo_root=str(scratch_repo), reuse_existing=True
    )
    assert reused["dvc_hash"] == res["dvc_hash"]


def test_the_demo_world_is_generated_validated_and_ingested_once(
    prefect_server: str, scratch_repo: Path, params_path: Path
) -> None:
    """`vsearch demo` re-runs on its world: the second time nothing is generated, validated
    or versioned again (the timing rows say skipped), and the same drop comes back."""
    from flows.ingest import ingest_flow

    kw = {"params": str(params_path), "repo_root": str(scratch_repo), "demo": True}
    kw |= {"reuse_existing": True, "seed": 3, "items": 40, "queries": 40}
    first = ingest_flow(**kw)
    assert [(r["stage"], r["ran"]) for r in first["timings"]] == [("world", True), ("ingest", True)]
    report = Path(first["report_path"])
    validated_at = report.stat().st_mtime_ns
    again = ingest_flow(**kw)
    assert [(r["stage"], r["ran"]) for r in again["timings"]] == [
        ("world", False),
        ("ingest", False),
    ]
    assert again["drop_id"] == first["drop_id"] and again["dvc_hash"] == first["dvc_hash"]
    assert report.stat().st_mtime_ns == validated_at  # not validated again
    assert first["docs_path"] and again["docs_path"] == first["docs_path"]  # still shown
