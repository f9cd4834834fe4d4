"""Recall on a shop that is not the demo world, with the project's own params, night after night.

    python -m bench.foreign_shop                      # two nights: a snapshot, then a delta
    python -m bench.foreign_shop --nights 1 --products 60   # quicker

(run from the repository root: it borrows the tests' foreign-shop generator, tests/foreign.py.)

What it does, as a shop would: a scratch data project (git + DVC with a local remote, fresh
MLflow and Prefect servers on free ports, ``params.yaml`` as committed: only locations and
ports differ), a BentoML service started before the first release, and the foreign generator
writing drops into the incoming folder. Each night is the scheduled nightly (no arguments):
ingest, window, mine, train, evaluate, promotion, reload. After each night, photos of the
shop's products that no drop ever held (the generator keeps their truth) are searched over
HTTP: ``recall@10`` = a listing of the photographed product among the results (group heads
and the listings grouped under them). The baseline in the same run is chance: the recall of
10 listings drawn at random from the served catalog.

Output: one JSON object per line on stdout (``night``, ``metric``, ``value``, ``baseline``,
``ratio``, plus the night's click metrics and whether the promotion shipped). Training is
time-budgeted (``train.time_budget_s``): on a loaded machine it takes fewer steps and the
figures drop; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.foreign import ForeignShop, fresh_photos, write_delta, write_snapshot
from tests.kit import REPO_ROOT, scratch_project
from vsearch.local.env import LIVE_PATH
from vsearch.settings import ServicesSettings, Settings, load_settings

log = logging.getLogger("foreign_shop")
K = 10
TOKEN_ENV = "VSEARCH_BENCH_ADMIN_TOKEN"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(root: Path, inbox: Path, port: int, services: ServicesSettings) -> Settings:
    """The committed params.yaml; only where things live and which ports change."""
    s = load_settings(REPO_ROOT / "params.yaml")
    s.services = services
    s.ingest.incoming = str(inbox)
    s.serving.port = port
    s.serving.model_source = "registry"
    s.serving.model_cache_dir = root / ".services" / "models"
    s.serving.admin_token_env = TOKEN_ENV
    s.promotion.build_bento = False  # the Bento store is global: keep the bench out of it
    return s


def _listed(hits: list[dict[str, Any]]) -> set[str]:
    return {h["item_id"] for h in hits} | {i for h in hits for i in h["more_sellers"]}


def _recall(url: str, shop: ForeignShop, n: int, seed: int) -> tuple[float, float, int]:
    """(recall@K, chance recall@K, errors) of ``n`` never-seen photos searched over HTTP."""
    photos = fresh_photos(shop, n, seed=seed)
    served = [shop.item_product[str(i)] for i in shop.catalog["item_id"]]
    found = errors = 0
    chance = 0.0
    with httpx.Client(timeout=60) as client:
        for photo, product in photos:
            resp = client.post(
                f"{url}/search", files={"image": ("q.jpg", photo, "image/jpeg")}, data={"k": K}
            )
            if resp.status_code != 200:
                errors += 1
                continue
            listed = _listed(resp.json()["results"])
            found += any(shop.item_product.get(i) == product for i in listed)
            m = served.count(product)
            chance += 1 - math.comb(len(served) - m, K) / math.comb(len(served), K)
    return found / n, chance / n, errors


def _emit(**row: Any) -> None:
    print(json.dumps(row), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nights", type=int, default=2, choices=(1, 2, 3))
    ap.add_argument("--products", type=int, default=120, help="badges in the shop")
    ap.add_argument("--queries", type=int, default=1500, help="shopper queries of the snapshot")
    ap.add_argument("--delta-queries", type=int, default=600)
    ap.add_argument("--photos", type=int, default=300, help="never-seen photos searched")
    ap.add_argument("--keep", action="store_true", help="keep the scratch project")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")

    from vsearch.data import dvc
    from vsearch.local import servers
    from vsearch.local import service as svc
    from vsearch.local.env import apply_client_env

    work = Path(tempfile.mkdtemp(prefix="foreign-shop-"))
    root, inbox = work / "repo", work / "incoming"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc.ensure_repo(root, "local", work / "remote")
    services = ServicesSettings(state_dir=work / "services")
    services.mlflow.port, services.prefect.port = _free_port(), _free_port()
    port = _free_port()
    s = _settings(root, inbox, port, services)
    params = scratch_project(root, s)
    os.environ[TOKEN_ENV] = "bench-" + os.urandom(8).hex()
    servers.up(services)
    apply_client_env(services)
    from flows.nightly import nightly_flow  # Prefect reads its settings on import

    url = f"http://127.0.0.1:{port}"
    # queries come 5 minutes apart: the snapshot's span its queries, the delta's a week later
    day0 = datetime.now(UTC) - timedelta(days=10, minutes=5 * args.queries)
    started = svc.start_background(
        "127.0.0.1", port, params, root, work / "service.log", s.serving.start_timeout_s, LIVE_PATH
    )
    shop: ForeignShop | None = None
    try:
        for night in range(1, args.nights + 1):
            drop_id = f"shop-{night:03d}"
            if night == 1:
                shop = write_snapshot(
                    inbox / drop_id,
                    drop_id=drop_id,
                    products=args.products,
                    queries=args.queries,
                    start=day0,
                )
            elif night == 2:
                assert shop is not None
                write_delta(
                    shop,
                    inbox / drop_id,
                    drop_id=drop_id,
                    queries=args.delta_queries,
                    start=day0 + timedelta(days=3, minutes=5 * args.queries),
                )
            t0 = time.perf_counter()
            try:
                res = nightly_flow(repo_root=str(root), params=str(params))
                shipped = bool((res.get("promotion") or {}).get("shipped"))
                note = "nothing to do" if res.get("nothing_to_do") else ""
            except Exception as exc:  # a refused gate is a result here, not a crash
                res, shipped, note = {}, False, f"{type(exc).__name__}: {exc}"[:300]
            seconds = time.perf_counter() - t0
            metrics_path = (res.get("training") or {}).get("metrics_path")
            clicks = {}
            if metrics_path:
                m = json.loads(Path(metrics_path).read_text())
                clicks = {k: m[k] for k in m if k.startswith("click_")}
            _emit(
                night=night,
                metric="night",
                seconds=round(seconds, 1),
                shipped=shipped,
                note=note,
                **clicks,
            )
            assert shop is not None
            if httpx.get(url + "/readyz", timeout=10).status_code != 200:
                _emit(night=night, metric=f"recall@{K}", value=None, note="service not ready")
                continue
            recall, chance, errors = _recall(url, shop, args.photos, seed=1000 + night)
            _emit(
                night=night,
                metric=f"recall@{K}",
                value=round(recall, 4),
                baseline=round(chance, 4),
                baseline_name="chance",
                ratio=round(recall / chance, 2) if chance else None,
                photos=args.photos,
                errors=errors,
                listings=len(shop.catalog),
                products=args.products,
            )
    finally:
        svc.stop(started)
        servers.down(services)
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            log.info("scratch project kept in %s", work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
