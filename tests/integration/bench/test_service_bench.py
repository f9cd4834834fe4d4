"""``bench/service_bench.py --quick`` runs end to end (world, untrained model, releases at two
scales, the service over HTTP) and prints the figures it promises, one JSON object per line.
Times are not checked: benches assert nothing about time, and neither does this test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsearch.local.env import TELEMETRY_OFF
from vsearch.search.pipeline import STAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
BENCH = REPO / "bench" / "service_bench.py"
QUICK_CONCURRENCY = {1, 2}  # service_bench.QUICK["concurrency"]


def test_quick_run_prints_every_figure(tmp_path: Path) -> None:
    env = {**os.environ, **TELEMETRY_OFF, "TMPDIR": str(tmp_path)}
    for var in ("VSEARCH_PARAMS", "VSEARCH_ROOT"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    header = rows[0]
    assert header["bench"] == "service"
    assert header["model_params"] > 0 and header["model_weight_bytes"] > 0
    assert header["cpu_count"] >= 1

    figures = [r for r in rows[1:] if "name" in r]
    assert len(figures) == len(rows) - 1, "every line after the header is a named figure"
    scales = {r["scale"] for r in figures}
    assert len(scales) == 2, scales  # the demo world and the synthetic large scale
    for scale in scales:
        mine = [r for r in figures if r["scale"] == scale]
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
        assert next(r for r in mine if r["name"] == "index_bytes_per_item")["value"] > 0
    assert "req/s" in out.stderr  # the summary table
