"""Load the search service over loopback: /search at 1, 8, 32 and 64 clients, with a stream of
admin upserts and a hot reload in the middle of each level; latency, errors and the server's
memory over time.

    python bench/load.py                        # 10 minutes in all (2.5 per level)
    python bench/load.py --minutes 3            # shorter
    python bench/load.py --quick                # tiny world, seconds per level (smoke test)
    python bench/load.py --clients 32 --no-admin   # searches only: what upserts/reload cost
    python bench/load.py --clients 8 --minutes 6 --reload-every 60 --upsert-every 0
                                                # the leak test: reloads only, RSS must stay flat

What runs: a project in a temporary folder (a generated world, an untrained model of the
``params.yaml`` architecture and a release of its catalog, as ``service_bench.py`` builds its
demo scale), served by ``bentoml serve`` with an admin token. An asyncio client (httpx, one
connection per simulated client, loopback only) sends ``POST /search`` with the world's query
photos, back to back, for ``--minutes`` split evenly over the levels, and never more than
``--max-requests`` per level. Meanwhile one admin client upserts a listing (a catalog photo
under a new id) every ``--upsert-every`` seconds, and at the middle of each level sends
``POST /admin/reload``. A sampler reads the resident memory of the service's whole process
tree (psutil) every ``--rss-every`` seconds.

Figures (JSON lines, docs/contributing.md#measuring): a header; per level ``search_latency_ms``
(p50/p95/p99 of the 2xx answers, requests, error rate, statuses, req/s; baseline: the 1-client
p50 of the same run, ``ratio`` = p50 / baseline, and ``p99_over_p50``), ``admin_upserts``
(acknowledged, failed, p50/p95 ms) and ``reload`` (status, seconds); then ``rss_mb`` (the
samples), ``rss_slope_mb_per_min`` (least-squares slope after the first level, the warm-up,
or after the first fifth of a run with one level: flat = no leak) and ``load_total``
(requests, errors, 5xx); ``anon_slope_mb_per_min`` is the same for the heap alone (RSS minus
file-backed pages). Nothing is asserted; the machine is shared, so read the ratios and
the slope, not absolute times. Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("load")

BENCH_TOKEN = "load-admin-token"
LEVELS = [1, 8, 32, 64]
DEFAULT_MINUTES = 10.0
MAX_REQUESTS = 200_000  # per level: the count bound beside the time bound
REQUEST_TIMEOUT_S = 60.0
WORLD = {"items": 1000, "queries": 200}
QUICK = {"items": 60, "queries": 24, "minutes": 0.3, "levels": [1, 4]}
PHOTOS = 64  # distinct query photos, round-robin
UPSERT_EVERY_S = 1.0
RELOAD_ONLY_TICK_S = 0.5  # how often the admin client checks for a due reload without upserts
RSS_EVERY_S = 2.0
SINGLE_LEVEL_WARMUP = 0.2  # share of a run with one level left out of the RSS slope
UPSERT_PRICE = 9.99


@dataclass
class Level:
    """What one concurrency level measured."""

    clients: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    upserts_ms: list[float] = field(default_factory=list)
    upsert_statuses: Counter = field(default_factory=Counter)
    reloads: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if not str(s).startswith("2"))


def pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2)}


class RssSampler(threading.Thread):
    """Resident memory (MB) of a process and its descendants, sampled until stopped."""

    def __init__(self, pid: int, every_s: float) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        # The anonymous part (heap: RSS minus file-backed and shared pages). Mapped index and
        # change-log files count in RSS as the page cache fills, without being a leak.
        self.anon: list[tuple[float, float]] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def rss_mb(self) -> tuple[float, float]:
        """(resident, anonymous resident) MB of the process tree."""
        import psutil

        total = shared = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                info = p.memory_info()
                total += info.rss
                shared += getattr(info, "shared", 0)  # Linux: file-backed + shmem resident
        return total / 2**20, (total - shared) / 2**20

    def run(self) -> None:
        while not self.stop_event.is_set():
            t = round(time.monotonic() - self.t0, 1)
            rss, anon = self.rss_mb()
            self.samples.append((t, round(rss, 1)))
            self.anon.append((t, round(anon, 1)))
            self.stop_event.wait(self.every_s)


async def search_client(
    client: Any, photos: list[bytes], start: int, deadline: float, budget: list[int], level: Level
) -> None:
    """Back-to-back searches until the deadline or the level's request budget is spent."""
    import httpx

    i = start
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        files = {"image": ("q.jpg", photos[i % len(photos)], "image/jpeg")}
        i += 1
        t0 = time.perf_counter()
        try:
            r = await client.post("/search", files=files, timeout=REQUEST_TIMEOUT_S)
        except httpx.HTTPError as exc:
            level.statuses[type(exc).__name__] += 1
            continue
        level.statuses[r.status_code] += 1
        if r.status_code == 200:
            level.latencies_ms.append((time.perf_counter() - t0) * 1e3)


async def admin_client(
    client: Any,
    upsert: dict[str, Any],
    deadline: float,
    reload_at: list[float],
    every_s: float,
    level: Level,
    counter: list[int],
) -> None:
    """Upsert a new listing every ``every_s`` seconds; reload at ``reload_at`` (monotonic
    times, in order): the midpoint, or every ``--reload-every`` seconds."""
    import httpx

    reload_at = list(reload_at)
    while time.monotonic() < deadline:
        if reload_at and time.monotonic() >= reload_at[0]:
            reload_at.pop(0)
            t0 = time.perf_counter()
            try:
                r = await client.post("/admin/reload", timeout=REQUEST_TIMEOUT_S)
                level.reloads.append(
                    {"status": r.status_code, "s": round(time.perf_counter() - t0, 3)}
                )
            except httpx.HTTPError as exc:
                level.reloads.append({"status": type(exc).__name__})
        if every_s <= 0:  # reloads only (--upsert-every 0)
            await asyncio.sleep(RELOAD_ONLY_TICK_S)
            continue
        counter[0] += 1
        fields = {**upsert["fields"], "item_id": f"load-{counter[0]}"}
        files = {"image": ("p.jpg", upsert["photo"], "image/jpeg")}
        t0 = time.perf_counter()
        try:
            r = await client.post("/admin/items", data=fields, files=files)
            level.upsert_statuses[r.status_code] += 1
            if r.status_code == 200:
                level.upserts_ms.append((time.perf_counter() - t0) * 1e3)
        except httpx.HTTPError as exc:
            level.upsert_statuses[type(exc).__name__] += 1
        await asyncio.sleep(every_s)


async def run_level(
    url: str, token: str, photos: list[bytes], upsert: dict[str, Any], clients: int,
    seconds: float, args: argparse.Namespace, counter: list[int],
) -> Level:  # fmt: skip
    import httpx

    level = Level(clients)
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    headers = {"Authorization": f"Bearer {token}"}
    t0 = time.monotonic()
    deadline = t0 + seconds
    budget = [args.max_requests]
    async with (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT_S) as searches,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as admin,
    ):
        tasks = [
            search_client(searches, photos, c * 7, deadline, budget, level) for c in range(clients)
        ]
        if args.reload_every:
            reload_at = list(np.arange(t0 + args.reload_every, deadline, args.reload_every))
        else:
            reload_at = [t0 + seconds / 2]
        if not args.no_admin:
            tasks.append(
                admin_client(admin, upsert, deadline, reload_at, args.upsert_every, level, counter)
            )
        await asyncio.gather(*tasks)
    level.seconds = time.monotonic() - t0
    return level


def rss_slope(samples: list[tuple[float, float]], after_s: float) -> float:
    """MB per minute, least squares over the samples after ``after_s`` (warm-up excluded)."""
    pts = [(t, mb) for t, mb in samples if t >= after_s]
    if len(pts) < 3:
        return float("nan")
    t, mb = np.asarray(pts).T
    return round(float(np.polyfit(t / 60.0, mb, 1)[0]), 3)


def emit(row: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def served_project(args: argparse.Namespace) -> Iterator[tuple[str, int, list[bytes], dict]]:
    """A project served with :data:`BENCH_TOKEN`: (url, pid, query photos, an upsert)."""
    import service_bench  # the bench folder is on sys.path when this script runs

    from vsearch.contracts import CATALOG, read_table
    from vsearch.settings import load_settings

    params_src = Path(args.params).resolve()
    settings = load_settings(params_src)
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        base = Path(tmp)
        ns = argparse.Namespace(drop=None, model=None, items=args.items, queries=args.queries)
        scale, _, _, photo_list, _ = service_bench.demo_scale(settings, ns, base, params_src)
        photos = [Path(p).read_bytes() for p in photo_list.read_text().split()[:PHOTOS]]
        drop = base / "drop"
        row = read_table(drop, CATALOG).iloc[0]
        upsert = {
            "photo": (drop / row["image"]).read_bytes(),
            "fields": {
                "category": str(row["category"]),
                "seller_id": "load-seller",
                "title": "load test listing",
                "price": str(UPSERT_PRICE),
            },
        }
        with service_bench.serve_scale(scale, base / "service.log", BENCH_TOKEN) as (url, pid):
            yield url, pid, photos, upsert


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="all levels together")
    ap.add_argument("--clients", type=int, nargs="+", default=LEVELS)
    ap.add_argument("--items", type=int, default=WORLD["items"])
    ap.add_argument("--queries", type=int, default=WORLD["queries"])
    ap.add_argument("--max-requests", type=int, default=MAX_REQUESTS, help="per level")
    ap.add_argument(
        "--upsert-every",
        type=float,
        default=UPSERT_EVERY_S,
        help="seconds (0: no upserts, reloads only)",
    )
    ap.add_argument(
        "--reload-every",
        type=float,
        default=0.0,
        help="seconds between hot reloads (0: one in the middle of each level); a long run "
        "with many reloads is the leak test (flat RSS over reloads)",
    )
    ap.add_argument("--rss-every", type=float, default=RSS_EVERY_S, help="seconds")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument(
        "--no-admin",
        action="store_true",
        help="searches only: no upserts, no reload (the ablation of what they cost the tail)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.items, args.queries = QUICK["items"], QUICK["queries"]
        args.minutes, args.clients = QUICK["minutes"], QUICK["levels"]
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    args = parse_args(argv)
    per_level_s = args.minutes * 60 / len(args.clients)
    with served_project(args) as (url, pid, photos, upsert):
        emit(
            {
                "bench": "load",
                "cpu_count": os.cpu_count(),
                "items": args.items,
                "levels": args.clients,
                "seconds_per_level": round(per_level_s, 1),
                "upsert_every_s": args.upsert_every,
                "note": "client and service share this (shared) machine; read ratios",
            }
        )
        sampler = RssSampler(pid, args.rss_every)
        sampler.start()
        counter = [0]
        levels: list[Level] = []
        warmup_end = 0.0
        try:
            for clients in args.clients:
                level = asyncio.run(
                    run_level(url, BENCH_TOKEN, photos, upsert, clients, per_level_s, args, counter)
                )
                levels.append(level)
                if len(levels) == 1:  # the first level is the warm-up ...
                    warmup_end = time.monotonic() - sampler.t0
                    if len(args.clients) == 1:  # ... or, the only one, its first part
                        warmup_end *= SINGLE_LEVEL_WARMUP
                base = pct(levels[0].latencies_ms)["p50"]
                p = pct(level.latencies_ms)
                emit(
                    {
                        "name": "search_latency_ms",
                        "clients": clients,
                        "value": p["p50"],
                        "unit": "ms",
                        **p,
                        "p99_over_p50": round(p["p99"] / p["p50"], 2) if p["p50"] else None,
                        "baseline": "p50 at 1 client (this run)" if clients != 1 else None,
                        "baseline_p50": base,
                        "ratio": round(p["p50"] / base, 3) if base else None,
                        "requests": level.requests,
                        "errors": level.errors,
                        "error_rate": round(level.errors / max(level.requests, 1), 5),
                        "rps": round(len(level.latencies_ms) / level.seconds, 2),
                        "statuses": {str(s): n for s, n in level.statuses.items()},
                        "seconds": round(level.seconds, 1),
                    }
                )
                up = pct(level.upserts_ms)
                emit(
                    {
                        "name": "admin_upserts",
                        "clients": clients,
                        "acknowledged": len(level.upserts_ms),
                        "failed": sum(level.upsert_statuses.values()) - len(level.upserts_ms),
                        "statuses": {str(s): n for s, n in level.upsert_statuses.items()},
                        "p50_ms": up["p50"],
                        "p95_ms": up["p95"],
                    }
                )
                emit(
                    {
                        "name": "reload",
                        "clients": clients,
                        "count": len(level.reloads),
                        "ok": sum(1 for r in level.reloads if r.get("status") == 200),
                        "max_s": max((r.get("s", 0.0) for r in level.reloads), default=None),
                        "statuses": sorted({str(r.get("status")) for r in level.reloads}),
                    }
                )
        finally:
            sampler.stop_event.set()
            sampler.join()
    samples = sampler.samples
    emit({"name": "rss_mb", "unit": "MB", "samples": samples})
    emit({"name": "rss_anon_mb", "unit": "MB", "samples": sampler.anon})
    slope = rss_slope(samples, warmup_end)
    first = [mb for t, mb in samples if t >= warmup_end][:1]
    emit(
        {
            "name": "rss_slope_mb_per_min",
            "value": slope,
            "unit": "MB/min",
            "after_s": round(warmup_end, 1),
            "rss_first_mb": first[0] if first else None,
            "rss_last_mb": samples[-1][1] if samples else None,
            "rss_max_mb": max((mb for _, mb in samples), default=None),
            "anon_slope_mb_per_min": rss_slope(sampler.anon, warmup_end),
        }
    )
    total = Counter()
    for level in levels:
        total.update(level.statuses)
    requests = sum(total.values())
    errors = sum(level.errors for level in levels)
    emit(
        {
            "name": "load_total",
            "requests": requests,
            "errors": errors,
            "status_5xx": sum(n for s, n in total.items() if str(s).startswith("5")),
            "upserts_acknowledged": sum(len(level.upserts_ms) for level in levels),
            "reloads_ok": sum(
                1 for level in levels for r in level.reloads if r.get("status") == 200
            ),
            "median_p50_ms": statistics.median(pct(lv.latencies_ms)["p50"] for lv in levels),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
