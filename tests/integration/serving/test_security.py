"""The service's answers to strangers over real HTTP: /info shows versions and health only
without the admin token (paths, lineage and errors with it), no answer leaks an absolute path
or exception text, admin calls are rate-limited per caller (429 + Retry-After), and every
answer carries the security headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kit import service_with
from vsearch.serving.http import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.integration

TOKEN = "sec-test-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
BURST = 3  # admin calls one caller may make at once in this service
RATE = 0.05  # per second: the bucket does not refill during a test
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
def service(served_project, port_factory) -> Iterator[str]:
    limits = {"admin_rate_per_s": RATE, "admin_rate_burst": BURST}
    root, params = served_project.root, served_project.params
    with service_with(root, params, port_factory(), "security", TOKEN, **limits) as url:
        yield url


def _leaks(text: str, root: Path) -> list[str]:
    """What in an answer reveals the machine: the project root, a temp path, a traceback."""
    marks = [str(root), str(root.resolve()), "/tmp/", "Traceback", 'File "', "site-packages"]
    return [m for m in marks if m in text]


def test_public_info_shows_versions_and_health_only(service: str, served_project) -> None:
    for r in (
        httpx.post(f"{service}/info", json={}, timeout=30),
        httpx.get(f"{service}/info", timeout=30),
    ):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ready"] is True and body["index_release"] == "v0001"
        assert body["serving"]["release"] == "v0001"
        assert set(body["serving"]["model"]) <= {"name", "version", "alias", "fingerprint"}
        assert body["serving"]["model"]["fingerprint"] == served_project.fingerprints["a"]
        assert "drops" not in body and "lineage" not in body["serving"]
        assert "project_root" not in body
        assert _leaks(r.text, served_project.root) == []


def test_admin_info_needs_the_token_and_shows_the_paths(service: str, served_project) -> None:
    for method in ("get", "post"):
        kwargs = {"json": {}} if method == "post" else {}
        r = httpx.request(method, f"{service}/info", headers=ADMIN, timeout=30, **kwargs)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["project_root"] == str(served_project.root.resolve())
        assert body["serving"]["model"]["path"].endswith("models/a")
        assert body["serving"]["lineage"]["drops"]
    wrong = httpx.get(f"{service}/info", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 403 and "project_root" not in wrong.text
    basic = httpx.post(
        f"{service}/info", json={}, headers={"Authorization": "Basic eDp5"}, timeout=30
    )
    assert basic.status_code == 401 and basic.headers["www-authenticate"].startswith("Bearer")
    assert _leaks(wrong.text + basic.text, served_project.root) == []


def test_health_and_error_answers_leak_no_path_or_internals(service: str, served_project) -> None:
    root = served_project.root
    answers = [
        httpx.get(f"{service}/readyz", timeout=30),
        httpx.get(f"{service}/healthz", timeout=30),
        httpx.get(f"{service}/livez", timeout=30),
        httpx.get(f"{service}/no-such-page", timeout=30),
        httpx.get(f"{service}/images/..%2F..%2Fparams.yaml", timeout=30),
        httpx.get(f"{service}/images/nope.jpg", timeout=30),
        httpx.get(f"{service}/uploads/nope.jpg", timeout=30),
        httpx.post(f"{service}/search", content=b"x", timeout=30),
        httpx.post(
            f"{service}/search",
            files={"image": ("a.jpg", b"not a photo", "image/jpeg")},
            timeout=30,
        ),
        httpx.post(
            f"{service}/search",
            content=b"--b\r\nbroken",
            headers={"content-type": "multipart/form-data; boundary=b"},
            timeout=30,
        ),
        httpx.post(f"{service}/search_batch", json={"queries": [{"image": "%%%"}]}, timeout=30),
        httpx.post(f"{service}/search_batch", json={"queries": "x"}, timeout=30),
        httpx.post(f"{service}/info", content=b"{", timeout=30),
    ]
    for r in answers:
        assert r.status_code < 500, (r.request.url, r.status_code, r.text)
        assert _leaks(r.text, root) == [], (r.request.url, r.text)


def test_security_headers_on_page_and_answers(service: str) -> None:
    answers = [
        httpx.get(f"{service}/", timeout=30),
        httpx.get(f"{service}/static/app.js", timeout=30),
        httpx.get(f"{service}/info", timeout=30),
        httpx.post(f"{service}/search", content=b"x", timeout=30),
        httpx.get(f"{service}/readyz", timeout=30),
        httpx.post(f"{service}/search_batch", json={"queries": []}, timeout=30),
    ]
    for r in answers:
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (r.request.url, name, dict(r.headers))
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_admin_calls_are_rate_limited_per_caller(service: str) -> None:
    """A token guesser is throttled by its address; the valid token has its own bucket (it
    still gets through after the guesser was throttled), and is throttled in turn."""
    guesses = [
        httpx.post(
            f"{service}/admin/reload", headers={"Authorization": f"Bearer guess{i}"}, timeout=30
        )
        for i in range(BURST + 1)
    ]
    statuses = [r.status_code for r in guesses]  # earlier tests' refused tokens count too
    assert statuses == sorted(statuses) and set(statuses) <= {403, 429}
    assert statuses[-1] == 429 and statuses.count(403) <= BURST
    retry = int(guesses[-1].headers["retry-after"])
    assert retry >= 1 and "too many requests" in guesses[-1].json()["error"]
    # the valid token is another caller: the info calls above took part of its bucket
    statuses = [
        httpx.get(f"{service}/info", headers=ADMIN, timeout=30).status_code
        for _ in range(BURST + 1)
    ]
    assert 200 in statuses and statuses[-1] == 429
    # public answers are not admin calls: never limited
    assert httpx.get(f"{service}/info", timeout=30).status_code == 200


def test_a_client_that_waits_for_100_continue_gets_the_413(service: str, raw_http) -> None:
    """What docs/operations.md tells clients to do with a big upload: send Content-Length and
    ``Expect: 100-continue``, then wait; an oversized body is refused before it is sent."""
    port = int(service.rsplit(":", 1)[1])
    head = (
        "POST /admin/items HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b"
        f"\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\n"
        "Content-Length: 30000000\r\n\r\n"
    )
    status, body = raw_http(port, head)
    assert status == 413 and b"exceeds the limit" in body
