"""The service under schemathesis (``bench/fuzz.py``, a short run): every operation of its own
OpenAPI schema, the admin ones with and without the token, answers without a 5xx, within the
schema (status, content type, body), and never lets an admin request through without the
token. ``make bench`` runs the same fuzzer longer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kit import service_with
from vsearch.local.env import TELEMETRY_OFF

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
FUZZ = REPO / "bench" / "fuzz.py"
TOKEN = "fuzz-test-token"
SEED = ["--seed", "0"]  # derandomized: the same draws every run
EXAMPLES = 8  # per operation, auth mode and generation mode: a few minutes on 2 cores
FUZZ_ADMIN_RATE = 10_000  # admin calls/s and burst: the fuzzer's pace never reaches it
ADMIN_OPS = {"POST /admin/items", "DELETE /admin/items/{item_id}", "POST /admin/reload"}


@pytest.fixture(scope="module")
def service(served_project, port_factory) -> Iterator[str]:
    # The admin rate limit is its own test (test_security.py): here it would answer 429 to
    # every admin call after the first few and hide the token check the fuzzer exercises.
    limits = {"admin_rate_per_s": FUZZ_ADMIN_RATE, "admin_rate_burst": FUZZ_ADMIN_RATE}
    root, params = served_project.root, served_project.params
    with service_with(root, params, port_factory(), "fuzz", TOKEN, **limits) as url:
        yield url


def test_schema_lists_every_route(service: str) -> None:
    paths = httpx.get(f"{service}/docs.json", timeout=30).json()["paths"]
    for route in ("/search", "/search_batch", "/info", "/admin/items", "/admin/reload"):
        assert route in paths, route
    assert paths["/admin/items/{item_id}"]["delete"]["security"]
    assert "413" in paths["/search"]["post"]["responses"]
    assert "500" not in paths["/search_batch"]["post"]["responses"]  # a 500 is a bug


def test_fuzz_finds_no_5xx_and_no_schema_violation(service: str, tmp_path: Path) -> None:
    env = {**os.environ, **TELEMETRY_OFF, "VSEARCH_ADMIN_TOKEN": TOKEN, "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(FUZZ), "--url", service, "--max-examples", str(EXAMPLES), *SEED],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert rows and rows[0]["bench"] == "fuzz", out.stderr[-3000:]
    total = rows[-1]
    assert total["name"] == "fuzz_total", out.stderr[-3000:]
    assert total["status_5xx"] == 0, total["failures"]
    assert total["violations"] == 0, total["failures"]
    assert total["auth_leaks"] == 0, total["failures"]
    assert out.returncode == 0, out.stderr[-3000:]

    ops = {(r["operation"], r["auth"]): r for r in rows if r.get("name") == "fuzz_operation"}
    assert total["operations"] == len({op for op, _ in ops}) >= 15
    for op in ADMIN_OPS:  # admin: fuzzed with the token and without it
        assert ops[(op, "token")]["requests"] > 0
        without = ops[(op, "none")]
        # 400: bad path; 429: the admin rate limit counts tokenless calls too
        assert set(without["statuses"]) <= {"400", "401", "403", "429"}, without
        assert {"401", "403"} & set(without["statuses"]), without  # the token check answered
    for (op, _), row in ops.items():
        assert row["requests"] > 0, op
    search = ops[("POST /search", "none")]["statuses"]
    assert any(s.startswith("4") for s in search)  # hostile input was refused, not crashed on
