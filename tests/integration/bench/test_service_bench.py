"""``bench/service_bench.py --quick`` runs end to end (world, untrained model, releases at two
scales, the service over HTTP) and prints the figures it promises, one JSON object per line.
Times are not checked: benches assert nothing about time, and neither does this test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit import REPO_ROOT, run_quick_bench
from vsearch.search.pipeline import STAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


BENCH = REPO_ROOT / "bench" / "service_bench.py"
QUICK_CONCURRENCY = {1, 2}  # service_bench.QUICK["concurrency"]


def test_quick_run_prints_every_figure(tmp_path: Path) -> None:
    rows, stderr = run_quick_bench(BENCH, tmp_path)

    header = rows[0]
    assert header["bench"] == "service"
    assert header["model_params"] > 0 and header["model_weight_bytes"] > 0
    assert header["cpu_count"] >= 1

    figures = [r for r in rows[1:] if "name" in r]
    assert len(figures) == len(rows) - 1, "every line after the header is a named figure"
    scales = {r["scale"] for r in figures}
    assert len(scales) == 2, scales  # the demo world and the synthetic large scale
    (big,) = scales - {"demo"}
    assert {r.get("config") for r in figures if r["scale"] == "demo"} >= {"baseline", "new"}
    for scale, config in [("demo", "baseline"), ("demo", "new"), (big, "new")]:
        mine = [r for r in figures if r["scale"] == scale and r.get("config", config) == config]
        names = {r["name"] for r in mine}
        assert {
            "index_bytes_per_item",
            "release_build_s",
            "service_start_s",
            "stage_latency_ms",
            "request_latency_ms",
            "throughput_rps",
        } <= names
        for path in ("http", "inprocess"):
            stages = {
                r["stage"] for r in mine if r["name"] == "stage_latency_ms" and r["path"] == path
            }
            assert set(STAGES) <= stages, (scale, path, stages)
        request = next(r for r in mine if r["name"] == "request_latency_ms")
        assert request["failed"] == 0 and request["baseline_p50"] > 0 and "ratio" in request
        rps = {r["concurrency"]: r for r in mine if r["name"] == "throughput_rps"}
        assert set(rps) == QUICK_CONCURRENCY
        assert all(r["failed"] == 0 and r["value"] > 0 and "ratio" in r for r in rps.values())
        assert all(r["mean_batch_size"] >= 1 for r in rps.values())
        if config == "baseline":  # every /search photo alone
            assert all(r["mean_batch_size"] == 1 for r in rps.values())
        assert next(r for r in mine if r["name"] == "index_bytes_per_item")["value"] > 0
    versus = {r["concurrency"]: r for r in figures if r["name"] == "throughput_vs_baseline"}
    assert set(versus) == QUICK_CONCURRENCY
    assert all(v["value"] > 0 and v["failed"] == v["baseline_failed"] == 0 for v in versus.values())
    assert "req/s" in stderr  # the summary table
