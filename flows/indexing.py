"""Prefect flow ``index-build``: embeddings → one task per category partition on Dask → release.

Thin wiring only: the tasks call :mod:`vsearch.index.builder` (the same functions as
``vsearch index build``). Partitions are independent, so each is a task run by prefect-dask's
``DaskTaskRunner``: a local cluster by default (``index.dask_workers`` processes), or the Dask
scheduler at ``index.dask_address``. Workers read the embeddings folder themselves (memory-mapped)
and return the built partition; the flow process then assembles, checksums, publishes and
switches ``CURRENT`` atomically. Remote workers therefore need the embeddings folder on shared
storage (docs/scaling.md). No task retries: a build is deterministic, and a failure must leave
the old release serving (it does: nothing is published before the last step).

A release the service can serve carries its catalog, product groups and lineage: pass the
window's ``drops`` (their merged catalog, the mined groups of ``search.product_groups_dir``,
the MLflow run beside the embeddings; :func:`vsearch.registry.promotion.release_data`).
Without ``drops`` the release is a bare index (benchmarks), which the service refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from vsearch.index.builder import PartitionJob, build_release, plan_partitions, run_job, set_threads
from vsearch.index.embeddings import EmbeddingSet
from vsearch.index.partition import BuiltPartition
from vsearch.settings import IndexSettings, Settings, load_settings


@task(name="plan-partitions", cache_policy=NO_CACHE)
def plan(embeddings: str) -> list[PartitionJob]:
    """One job per category (rows of the embeddings set)."""
    emb = EmbeddingSet.load(embeddings, mmap=True)
    return plan_partitions(emb.categories)


@task(name="build-partition", cache_policy=NO_CACHE)
def build_partition_task(
    embeddings: str, job: PartitionJob, settings: IndexSettings, threads: int
) -> BuiltPartition:
    """Build one partition in a Dask worker (reads its rows from the memory-mapped folder)."""
    set_threads(threads)
    emb = EmbeddingSet.load(embeddings, mmap=True)
    built = run_job(job, emb, settings)
    get_run_logger().info(
        "partition %r: %d items, %s, %.1fs", job.name, len(job.rows), built.kind, built.seconds
    )
    return built


@task(name="publish-release", cache_policy=NO_CACHE)
def publish_release(
    embeddings: str,
    built: list[BuiltPartition],
    settings: Settings,
    indexes_dir: str,
    version: str | None,
    drops: list[str] | None = None,
) -> dict[str, Any]:
    """Assemble the built partitions into a checksummed release and switch ``CURRENT``."""
    from vsearch.index.release_data import mlflow_lineage
    from vsearch.registry.promotion import release_data

    emb = EmbeddingSet.load(embeddings, mmap=True)
    data = None
    if drops:
        run = Path(embeddings).resolve().parent
        data = release_data(settings, Path.cwd(), [Path(d) for d in drops], mlflow_lineage(run))

    def already_built(_fn: object, jobs: list[PartitionJob]) -> list[BuiltPartition]:
        if len(jobs) != len(built):
            raise RuntimeError(f"plan changed: {len(jobs)} partitions, {len(built)} built")
        return built

    manifest = build_release(
        emb,
        settings.index,
        indexes_dir,
        version=version,
        map_fn=already_built,
        threads=settings.index.build_threads or settings.project.threads,
        extra={"source": str(Path(embeddings).resolve())},
        data=data,
    )
    return {
        "version": manifest.version,
        "items": manifest.n_items,
        "partitions": {p.name: p.kind for p in manifest.partitions},
        "timings": manifest.timings,
    }


@flow(name="index-build")
def index_build_flow(
    embeddings: str,
    params: str = "params.yaml",
    indexes_dir: str | None = None,
    version: str | None = None,
    drops: list[str] | None = None,
) -> dict[str, Any]:
    """Build and activate a release of ``embeddings`` (an EmbeddingSet folder).

    Args:
        embeddings: the embeddings folder (item ids, categories, codes, vectors, model).
        params: the params.yaml to read.
        indexes_dir: where releases live (default ``project.indexes_dir``).
        version: release name (default: the next ``vNNNN``).
        drops: the drop folders (oldest first) whose catalog the release carries.
    """
    settings = load_settings(Path(params))
    out_dir = indexes_dir or str(settings.project.indexes_dir)
    jobs = plan(embeddings)
    threads = max(1, (settings.index.build_threads or settings.project.threads))
    futures = [
        build_partition_task.submit(embeddings, job, settings.index, threads) for job in jobs
    ]
    built = [f.result() for f in futures]
    result = publish_release(embeddings, built, settings, out_dir, version, drops)
    get_run_logger().info("release %s: %d items", result["version"], result["items"])
    return result


def dask_task_runner(settings: Settings) -> Any:
    """prefect-dask's runner: the configured scheduler, or a local cluster of processes."""
    from prefect_dask import DaskTaskRunner

    if settings.index.dask_address:
        return DaskTaskRunner(address=settings.index.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": settings.index.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


def run_index_build(
    embeddings: str | Path,
    params: str | Path = "params.yaml",
    indexes_dir: str | Path | None = None,
    version: str | None = None,
    drops: list[str | Path] | None = None,
) -> dict[str, Any]:
    """Run :func:`index_build_flow` on Dask as configured in ``params`` (CLI and tests)."""
    settings = load_settings(Path(params))
    configured = index_build_flow.with_options(task_runner=dask_task_runner(settings))
    return configured(
        embeddings=str(embeddings),
        params=str(params),
        indexes_dir=None if indexes_dir is None else str(indexes_dir),
        version=version,
        drops=None if drops is None else [str(d) for d in drops],
    )


if __name__ == "__main__":  # pragma: no cover - manual runs
    import sys

    print(run_index_build(sys.argv[1]))
