"""``bench/load.py --quick`` runs end to end (tiny world, untrained model, the service over
HTTP, searches at two client counts with admin upserts and a hot reload in the middle) and
prints every figure it promises. Times are not checked: benches assert nothing about time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit import REPO_ROOT, run_quick_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


BENCH = REPO_ROOT / "bench" / "load.py"


def test_quick_run_prints_every_figure(tmp_path: Path) -> None:
    rows, _ = run_quick_bench(BENCH, tmp_path)
    assert rows[0]["bench"] == "load" and rows[0]["levels"] == [1, 4]
    by_name: dict[str, list[dict]] = {}
    for row in rows[1:]:
        by_name.setdefault(row["name"], []).append(row)

    latency = {r["clients"]: r for r in by_name["search_latency_ms"]}
    assert set(latency) == {1, 4}
    for r in latency.values():
        assert r["requests"] > 0 and r["errors"] == 0, r
        assert 0 < r["p50"] <= r["p95"] <= r["p99"]
        assert r["baseline_p50"] == latency[1]["p50"] and r["ratio"] > 0
    upserts = by_name["admin_upserts"]
    assert len(upserts) == 2 and all(u["acknowledged"] > 0 and u["failed"] == 0 for u in upserts)
    assert [(r["count"], r["ok"]) for r in by_name["reload"]] == [
        (1, 1),
        (1, 1),
    ]  # a reload under load
    samples = by_name["rss_mb"][0]["samples"]
    assert len(samples) >= 3 and all(mb > 0 for _, mb in samples)
    assert "value" in by_name["rss_slope_mb_per_min"][0]
    total = by_name["load_total"][0]
    assert total["status_5xx"] == 0 and total["errors"] == 0
    assert total["requests"] == sum(r["requests"] for r in latency.values())
