"""A short load run against a running service: latency percentiles, throughput, failures.

Why a module of its own: the promotion gate measures the challenger's p95 latency with it (a
regression gate on latency needs the service's real path: HTTP, multipart parsing, decode,
model, search, JSON), and ``bench/service_bench.py`` reports the same figures at several
concurrency levels. Requests are ``POST /search`` with real photos, sent by ``concurrency``
threads, each with its own HTTP connection (keep-alive, like a client library would).

The client is the standard library's :mod:`http.client` over bodies encoded once, up front (by
httpx, so they are byte for byte what a client library sends): what is timed is the service's
path, not a Python client's own request building. httpx per request cost ~0.7 ms of a lone
search's ~15 ms, and under load its CPU came out of the two cores the service runs on.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
import numpy as np

SEARCH_PATH = "/search"
PHOTO_FIELD = "image"
PERCENTILES = (50, 95, 99)


@dataclass
class LoadResult:
    """What one load run measured (latencies in milliseconds, client side).

    Attributes:
        requests: requests sent.
        concurrency: client threads.
        ok: 2xx answers.
        statuses: count per HTTP status (and ``"error"`` for transport failures).
        p50_ms / p95_ms / p99_ms: client-side latency percentiles of the 2xx answers.
        rps: 2xx answers per second of wall time (timed requests only: warm-up excluded).
        stage_ms: median per-stage time the service reported (``timings_ms`` of the answers).
        stage_pct_ms: the same per stage as ``{"p50": .., "p95": .., "p99": ..}``.
        mean_batch_size: mean ``batch_size`` of the 2xx answers (photos in the model call
            that served each; 1 where an answer does not say).
    """

    requests: int
    concurrency: int
    ok: int
    statuses: dict[str, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float
    stage_ms: dict[str, float] = field(default_factory=dict)
    stage_pct_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    mean_batch_size: float = 1.0

    @property
    def failed(self) -> int:
        return self.requests - self.ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


TRANSPORT_ERRORS = (OSError, http.client.HTTPException)  # refused, reset, timed out, garbled


def encode_search(url: str, photo: bytes, filename: str, k: int) -> tuple[bytes, dict[str, str]]:
    """The multipart body and headers of one ``/search`` upload, as httpx encodes them."""
    request = httpx.Request(
        "POST", url, files={PHOTO_FIELD: (filename, photo, "image/jpeg")}, data={"k": str(k)}
    )
    headers = {"Content-Type": request.headers["content-type"]}
    return request.read(), headers


def connect(target: SplitResult, timeout_s: float) -> http.client.HTTPConnection:
    """A keep-alive connection to ``target`` (opened on the first request)."""
    kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    return kind(target.hostname, target.port, timeout=timeout_s)


def load_run(
    base_url: str,
    photos: Sequence[bytes],
    *,
    requests: int,
    concurrency: int = 1,
    k: int = 10,
    timeout_s: float = 30.0,
    warmup: int = 2,
) -> LoadResult:
    """Send ``requests`` searches (photos in turn) with ``concurrency`` threads.

    Args:
        base_url: e.g. ``http://127.0.0.1:3000``.
        photos: encoded image files (JPEG/PNG bytes) to upload, used round-robin.
        requests: searches to time (after ``warmup`` untimed ones per thread).
        concurrency: client threads sending at once.
        k: results per search.
        timeout_s: per-request timeout (a timeout counts as a transport failure).

    Raises:
        ValueError: no photos, a non-positive count or not an http(s) URL.
    """
    if not photos or requests < 1 or concurrency < 1:
        raise ValueError("load_run needs photos, requests >= 1 and concurrency >= 1")
    target = urlsplit(base_url.rstrip("/") + SEARCH_PATH)
    if target.scheme not in ("http", "https") or not target.hostname:
        raise ValueError(f"load_run needs an http(s) URL, got {base_url!r}")
    bodies = [
        encode_search(target.geturl(), photo, f"q{i}.jpg", k) for i, photo in enumerate(photos)
    ]
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    stages: dict[str, list[float]] = {}
    batch_sizes: list[int] = []
    # Every thread warms up, then all start timing together: the wall clock covers only the
    # timed requests, so rps is not diluted by warm-up (first requests pay lazy set-up).
    ready = threading.Barrier(concurrency + 1)

    def post(conn: http.client.HTTPConnection, i: int) -> tuple[int, bytes]:
        body, headers = bodies[i % len(bodies)]
        try:
            conn.request("POST", target.path, body, headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except BaseException:
            conn.close()  # the next request opens a new connection
            raise

    def worker(_: int) -> None:
        conn = connect(target, timeout_s)
        try:
            try:
                for w in range(warmup):
                    with contextlib.suppress(*TRANSPORT_ERRORS):
                        post(conn, w)
            except BaseException:
                ready.abort()  # the others (and the clock) must not wait for this thread
                raise
            ready.wait()
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    status, data = post(conn, i)
                except TRANSPORT_ERRORS:
                    with lock:
                        statuses["error"] += 1
                    continue
                ms = (time.perf_counter() - start) * 1e3
                ok = 200 <= status < 300
                body = json.loads(data) if ok else {}
                timings = body.get("timings_ms") or {}
                with lock:  # JSON parsed outside the lock: client threads stay concurrent
                    statuses[str(status)] += 1
                    if ok:
                        latencies.append(ms)
                        batch_sizes.append(int(body.get("batch_size", 1)))
                        for name, v in timings.items():
                            stages.setdefault(name, []).append(float(v))
        finally:
            conn.close()

    with ThreadPoolExecutor(concurrency) as pool:
        done = [pool.submit(worker, i) for i in range(concurrency)]
        with contextlib.suppress(threading.BrokenBarrierError):  # f.result() says why
            ready.wait()
        began = time.perf_counter()
        for f in done:
            f.result()
        wall = time.perf_counter() - began
    pct = (
        np.percentile(latencies, PERCENTILES).tolist()
        if latencies
        else [float("nan")] * len(PERCENTILES)
    )
    return LoadResult(
        requests=requests,
        concurrency=concurrency,
        ok=len(latencies),
        statuses=dict(statuses),
        p50_ms=float(pct[0]),
        p95_ms=float(pct[1]),
        p99_ms=float(pct[2]),
        rps=len(latencies) / wall if wall > 0 else 0.0,
        stage_ms={k_: statistics.median(v) for k_, v in stages.items()},
        stage_pct_ms={k_: percentiles(v) for k_, v in stages.items()},
        mean_batch_size=statistics.mean(batch_sizes) if batch_sizes else float("nan"),
    )


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """``{"p50": .., "p95": .., "p99": ..}`` of ``values`` (NaN when empty)."""
    if not values:
        return {f"p{p}": float("nan") for p in PERCENTILES}
    return {
        f"p{p}": float(v)
        for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True)
    }
