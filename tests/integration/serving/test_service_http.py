"""The BentoML service over real HTTP before any release exists: it starts, says why it is not
ready, and refuses searches with a clear 503 (never a 500)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vsearch.local.processes import Started
from vsearch.local.service import LIVE_PATH, start_background, stop

pytestmark = pytest.mark.integration


TOKEN = "http-test-token"


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, params_path: Path, port_factory
) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("svc_root")
    raw = root / "data" / "raw"
    (raw / "d1").mkdir(parents=True)
    (raw / "d1.dvc").write_text("outs:\n- md5: abc123.dir\n  path: d1\n")
    (root / "indexes").mkdir()
    (root / "indexes" / "CURRENT").write_text("v7\n")
    port = port_factory()
    proc: Started = start_background(
        "127.0.0.1",
        port,
        params_path,
        root,
        root / "service.log",
        timeout_s=90,
        wait_path=LIVE_PATH,
        env={"VSEARCH_ADMIN_TOKEN": TOKEN},
    )
    try:
        yield f"http://127.0.0.1:{port}", root
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def url(service: tuple[str, Path]) -> str:
    return service[0]


def test_health_endpoints(url: str) -> None:
    assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
    # CURRENT names a release that does not exist: alive, but not ready to search
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
    paths = httpx.get(f"{url}/docs.json", timeout=10).json()["paths"]
    assert "/info" in paths and "/search_batch" in paths


def test_info_reports_drops_and_release_to_the_admin(service: tuple[str, Path]) -> None:
    url, root = service
    admin = {"Authorization": f"Bearer {TOKEN}"}
    body = httpx.post(f"{url}/info", json={}, headers=admin, timeout=30).json()
    assert body["drops"] == [
        {"drop_id": "d1", "path": body["drops"][0]["path"], "dvc_hash": "abc123.dir"}
    ]
    assert body["index_release"] == "v7"
    assert body["ready"] is False and body["serving"] is None
    assert "no index release is loaded" in body["error"] and "v7" in body["error"]
    assert str(root) in body["error"]  # where it looked: for the operator


def test_public_info_and_refusals_say_why_without_paths(service: tuple[str, Path]) -> None:
    url, root = service
    body = httpx.post(f"{url}/info", json={}, timeout=30).json()
    assert body["index_release"] == "v7" and body["ready"] is False
    assert "no index release is loaded" in body["error"] and "drops" not in body
    r = httpx.post(f"{url}/search", files={"image": ("a.jpg", b"x", "image/jpeg")}, timeout=30)
    b = httpx.post(f"{url}/search_batch", json={"queries": [{"image": "eA=="}]}, timeout=30)
    for text in (str(body), r.text, b.text):
        assert str(root) not in text and "/tmp/" not in text, text


def test_search_without_a_release_is_503_with_a_reason(url: str) -> None:
    r = httpx.post(f"{url}/search", files={"image": ("a.jpg", b"x", "image/jpeg")}, timeout=30)
    assert r.status_code == 503
    assert "no index release is loaded" in r.json()["error"]
    r = httpx.post(f"{url}/search_batch", json={"queries": [{"image": "eA=="}]}, timeout=30)
    assert r.status_code == 503 and "no index release is loaded" in r.json()["error"]


def test_page_is_served_without_a_release(url: str) -> None:
    r = httpx.get(f"{url}/", timeout=10)
    assert r.status_code == 200 and "vsearch" in r.text and "/static/app.js" in r.text
    assert httpx.get(f"{url}/static/app.js", timeout=10).status_code == 200
    assert httpx.get(f"{url}/samples", timeout=10).json() == {"samples": []}


def test_info_takes_json_only(url: str) -> None:
    r = httpx.post(f"{url}/info", files={"x": ("x", b"--broken")}, timeout=10)
    assert r.status_code == 415 and "application/json" in r.json()["error"]


def test_unknown_route_is_4xx(url: str) -> None:
    r = httpx.post(f"{url}/no-such-endpoint", json={}, timeout=10)
    assert 400 <= r.status_code < 500
