"""Index build time: one process vs the ``index-build`` flow on a Dask cluster.

    python bench/build_bench.py                  # 1M synthetic items (~10 min on 2 cores)
    python bench/build_bench.py --n 100000       # quicker
    python bench/build_bench.py --quick          # tiny (smoke test)

What runs, on the same synthetic catalog (:mod:`vsearch.index.synthetic`, 256-d floats,
256-bit codes, 12 skewed categories) saved as an embeddings folder:

* ``one_process`` at 1 and at ``--threads`` faiss threads: :func:`build_release` with the
  partitions built one after another (what ``vsearch index build`` does);
* ``dask``: the Prefect flow ``index-build`` (``flows/indexing.py``) with prefect-dask's
  ``DaskTaskRunner`` on a ``LocalCluster`` of ``--workers`` processes x 1 thread, against a
  Prefect server started for the run (the embedded one of ``vsearch services up``, on free
  ports, in a temporary folder). Its time includes starting the cluster and shipping the
  built partitions back; ``cluster_start_s`` is measured apart so the two can be told apart.

Figures (JSON lines): a header, then one row per configuration with ``seconds``,
``items_per_s``, ``partitions_s`` (one process: partition builds; dask: the flow's build tasks)
and ``ratio`` = one process at 1 thread / this (the speed-up); then ``largest_partition``
(its items and its share of the one-thread build time: the long pole no number of workers
shortens). The machine is shared: read the ratios. docs/scaling.md reads them for 100M-1B.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("build_bench")
REPO_ROOT = Path(__file__).resolve().parents[1]  # flows/ is imported from the checkout

QUICK_N = 6000
QUICK_INDEX = {"flat_max": 800, "ivf_list_size": 40}  # quick mode: keep the IVF path in play


def emit(row: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _row(name: str, seconds: float, n: int, base_s: float | None, **extra: Any) -> dict:
    return {
        "name": name,
        "seconds": round(seconds, 2),
        "items_per_s": round(n / seconds),
        "baseline": "one_process at 1 thread (this run)",
        "ratio": round(base_s / seconds, 3) if base_s else 1.0,
        **extra,
    }


def one_process(emb: Any, index_settings: Any, out: Path, threads: int) -> tuple[float, dict]:
    """``build_release`` in this process; (seconds, manifest timings)."""
    from vsearch.index.builder import build_release

    t0 = time.perf_counter()
    manifest = build_release(emb, index_settings, out, threads=threads)
    return time.perf_counter() - t0, dict(manifest.timings)


def cluster_start_s(workers: int) -> float:
    """Seconds to start and stop a LocalCluster like the flow's (processes, 1 thread each)."""
    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        return time.perf_counter() - t0


def dask_flow(emb_dir: Path, params: Path, work: Path) -> tuple[float, dict]:
    """The ``index-build`` flow on its DaskTaskRunner, against a fresh embedded Prefect."""
    from vsearch.local import servers
    from vsearch.local.env import apply_client_env, prefect_api_url
    from vsearch.settings import ServicesSettings

    services = ServicesSettings(state_dir=work / "services")
    services.mlflow.port, services.prefect.port = _free_port(), _free_port()
    servers.up(services)
    try:
        apply_client_env(services)  # before Prefect reads its settings
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_LOGGING_TO_API_ENABLED,
            temporary_settings,
        )

        sys.path.insert(0, str(REPO_ROOT))
        from flows.indexing import run_index_build

        updates = {
            PREFECT_API_URL: prefect_api_url(services),
            PREFECT_LOGGING_TO_API_ENABLED: False,
        }
        with temporary_settings(updates=updates):
            t0 = time.perf_counter()
            result = run_index_build(emb_dir, params)
            return time.perf_counter() - t0, dict(result.get("timings") or {})
    finally:
        servers.down(services)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="catalog items")
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    ap.add_argument(
        "--threads", type=int, default=2, help="faiss threads of the 2nd one-process run"
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_N} items (smoke test)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    for noisy in ("vsearch.index", "distributed", "prefect", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "warning"  # the workers' own logs
    args = parse_args(argv)
    n = QUICK_N if args.quick else args.n

    from vsearch.index.synthetic import SyntheticSpec, make_world
    from vsearch.settings import load_settings

    settings = load_settings(Path(args.params))
    raw = yaml.safe_load(Path(args.params).read_text())
    index_over = {"dask_workers": args.workers, "dask_address": None, "build_threads": 1}
    if args.quick:
        index_over.update(QUICK_INDEX)
    index_settings = settings.index.model_copy(update=index_over)

    with tempfile.TemporaryDirectory(prefix="build-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        world = make_world(SyntheticSpec(items=n, seed=args.seed, encoder_sample=min(n, 50_000)))
        emb_dir = world.catalog.save(work / "embeddings")
        sizes = sorted(
            (
                (str(c), int((world.catalog.categories == c).sum()))
                for c in set(world.catalog.categories)
            ),
            key=lambda kv: -kv[1],
        )
        emit(
            {
                "bench": "index_build",
                "n": n,
                "partitions": len(sizes),
                "largest_partition": sizes[0][1],
                "workers": args.workers,
                "cpu_count": os.cpu_count(),
                "data_s": round(time.perf_counter() - t0, 1),
                "note": "shared machine: compare ratios within this run",
            }
        )
        base_s, timings1 = one_process(world.catalog, index_settings, work / "idx1", 1)
        emit(
            _row(
                "one_process", base_s, n, None, threads=1, partitions_s=timings1.get("partitions_s")
            )
        )
        sec, timings = one_process(world.catalog, index_settings, work / "idx2", args.threads)
        emit(
            _row(
                "one_process", sec, n, base_s,
                threads=args.threads, partitions_s=timings.get("partitions_s"),
            )
        )  # fmt: skip
        start_s = cluster_start_s(args.workers)
        raw["project"]["indexes_dir"] = str(work / "idx_dask")
        raw["index"].update(index_over)
        params = work / "params.yaml"
        params.write_text(yaml.safe_dump(raw))
        sec, timings = dask_flow(emb_dir, params, work)
        emit(
            _row(
                "dask", sec, n, base_s,
                workers=args.workers, threads_per_worker=1, cluster_start_s=round(start_s, 2),
                without_cluster_start_ratio=round(base_s / max(sec - start_s, 1e-9), 3),
            )
        )  # fmt: skip
    emit(
        {
            "name": "largest_partition",
            "items": sizes[0][1],
            "share_of_items": round(sizes[0][1] / n, 3),
            "note": "partitions are the unit of work: the largest bounds any speed-up",
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
