"""The BentoML service over real HTTP: health, OpenAPI, and what it reports about the project."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vsearch.serving.process import start_background, stop

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, params_path: Path, port_factory
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("svc_root")
    raw = root / "data" / "raw"
    (raw / "d1").mkdir(parents=True)
    (raw / "d1.dvc").write_text("outs:\n- md5: abc123.dir\n  path: d1\n")
    (root / "indexes").mkdir()
    (root / "indexes" / "CURRENT").write_text("v7\n")
    port = port_factory()
    proc: subprocess.Popen[bytes] = start_background(
        "127.0.0.1", port, params_path, root, root / "service.log", timeout_s=90
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_health_endpoints(service: str) -> None:
    assert httpx.get(f"{service}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{service}/readyz", timeout=10).status_code == 200
    assert "/info" in httpx.get(f"{service}/docs.json", timeout=10).json()["paths"]


def test_info_reports_drops_and_release(service: str) -> None:
    body = httpx.post(f"{service}/info", json={}, timeout=30).json()
    assert body["drops"] == [
        {"drop_id": "d1", "path": body["drops"][0]["path"], "dvc_hash": "abc123.dir"}
    ]
    assert body["index_release"] == "v7"


def test_unknown_route_is_4xx(service: str) -> None:
    r = httpx.post(f"{service}/no-such-endpoint", json={}, timeout=10)
    assert 400 <= r.status_code < 500
