"""The load-run client: what it sends, what it counts, and failures it survives.

Against a real HTTP server of the standard library on loopback (not the service: this is the
client's own behaviour; the service's load runs are in the promotion and service-bench tests).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from vsearch.local.loadrun import load_run

pytestmark = pytest.mark.unit

GOOD, BAD, DROP = b"good-photo", b"bad-photo", b"drop-connection"


class Search(BaseHTTPRequestHandler):
    """``POST /search``: 200 with timings for GOOD, 422 for BAD, a dropped connection for DROP."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the service
    seen: ClassVar[list[tuple[str, bytes, str]]] = []  # (field k, photo bytes, photo content type)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields = {p.get_param("name", header="content-disposition"): p for p in form.iter_parts()}
        photo = fields["image"].get_payload(decode=True)
        Search.seen.append(
            (fields["k"].get_content().strip(), photo, fields["image"].get_content_type())
        )
        if photo == DROP:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        status, answer = (200, {"timings_ms": {"total": 5.0}, "batch_size": 2})
        if photo == BAD:
            status, answer = 422, {"error": "not a photo"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Search.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Search)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_sends_multipart_photos_and_counts_answers(server: str) -> None:
    r = load_run(server, [GOOD, BAD], requests=10, concurrency=2, k=7, warmup=1)
    assert r.requests == 10 and r.ok == 5
    assert r.statuses == {"200": 5, "422": 5}
    assert r.failed == 5
    assert r.stage_ms == {"total": 5.0}
    assert r.mean_batch_size == 2
    assert r.rps > 0 and 0 < r.p50_ms <= r.p95_ms <= r.p99_ms
    assert len(Search.seen) == 12  # 10 timed + 1 warm-up per thread
    assert {(k, t) for k, _, t in Search.seen} == {("7", "image/jpeg")}
    assert {p for _, p, _ in Search.seen} == {GOOD, BAD}


def test_a_dropped_connection_is_an_error_and_the_run_goes_on(server: str) -> None:
    r = load_run(server, [GOOD, DROP], requests=6, concurrency=1, warmup=0)
    assert r.statuses == {"200": 3, "error": 3}
    assert r.ok == 3


def test_a_server_that_is_not_there_is_counted_not_raised() -> None:
    r = load_run("http://127.0.0.1:9", [GOOD], requests=3, timeout_s=2.0)
    assert r.statuses == {"error": 3} and r.ok == 0


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "127.0.0.1:3000", "http://"])
def test_not_an_http_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        load_run(url, [GOOD], requests=1)
