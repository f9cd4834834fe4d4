"""Prefect flow ``ingest``: one drop (or the demo world) → validate → quarantine → DVC →
ledger → window → report.

Thin wiring only: each task calls one step function of :mod:`vsearch.data.ingest` (the same
functions ``vsearch ingest`` runs), so the flow adds scheduling, retries, run history and a
report in the Prefect UI, and nothing else. Only the DVC task retries: it is the one doing I/O
that can fail transiently; validation is deterministic and retrying it would hide a bad drop.
The demo world is generated only when asked for (``demo=True``: ``vsearch demo``). The result
carries the wall time of the world generation and of the ingest (``timings``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from vsearch.data import ingest as steps
from vsearch.errors import BadInput, GateFailed
from vsearch.local.timing import row, timed
from vsearch.settings import Settings, load_settings

ARTIFACT_KEY = "ingest-report"
WORLD = "world"  # timing rows: the demo world's generation (skipped: reused) ...
INGEST = "ingest"  # ... and validate → version → record → window (skipped: drop reused)


@task(name="generate-demo-drop")
def generate_demo_drop(
    settings: Settings, repo_root: Path, seed: int, items: int | None, queries: int | None
) -> tuple[Path, Path]:
    """Make (or reuse) the built-in demo world under ``data/world/``."""
    return steps.demo_drop(settings, repo_root, seed=seed, items=items, queries=queries)


@task(name="validate", cache_policy=NO_CACHE)
def validate(
    drop: Path, settings: Settings, repo_root: Path, accept_volume: bool = False
) -> tuple[Any, Path]:
    """Great Expectations gates; a critical failure publishes the report and stops the flow."""
    try:
        return steps.validate_step(drop, settings, repo_root, accept_volume)
    except GateFailed as exc:
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=f"# Ingest stopped: validation failed\n\n```\n{exc}\n```\n",
            description=f"validation failed for {drop.name}",
        )
        raise


@task(name="stage-and-quarantine")
def stage(
    drop: Path,
    result: Any,
    report_path: Path,
    settings: Settings,
    repo_root: Path,
    truth: Path | None,
    origin: str | None = None,
) -> steps.IngestResult:
    """Quarantine bad rows and stage the clean drop under ``data/raw/`` (atomic rename)."""
    return steps.stage_step(drop, result, report_path, settings, repo_root, truth, origin)


@task(name="dvc-version", retries=2, retry_delay_seconds=5)
def version(staged: steps.IngestResult, settings: Settings, repo_root: Path) -> steps.IngestResult:
    """``dvc add`` + ``dvc push`` the staged drop; the hash is what later runs are tagged with."""
    return steps.version_step(staged, settings, repo_root)


@task(name="record", cache_policy=NO_CACHE)
def record(res: steps.IngestResult, settings: Settings, repo_root: Path) -> None:
    """Add the versioned drop to the drop ledger (new drops, window, validation history)."""
    steps.record_step(res, settings, repo_root)


@task(name="select-window", cache_policy=NO_CACHE)
def select_window(settings: Settings, repo_root: Path) -> dict[str, Any]:
    """Name the window of drops in ``data/current.yaml`` and build its merged view."""
    return steps.select_window(settings, repo_root)


@task(name="report")
def report(res: steps.IngestResult, reused: bool) -> str:
    """Publish a markdown artifact: row counts, quarantine, data hash, where everything is."""
    md = steps.ingest_markdown(res, reused=reused)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=md, description=f"ingest {res.drop_id}")
    return md


@flow(name="ingest")
def ingest_flow(
    drop: str | None = None,
    truth: str | None = None,
    params: str = "params.yaml",
    repo_root: str = ".",
    seed: int | None = None,
    items: int | None = None,
    queries: int | None = None,
    reuse_existing: bool = False,
    demo: bool = False,
    accept_volume: bool = False,
    origin: str | None = None,
) -> dict[str, Any]:
    """Ingest ``drop`` (a folder in the contract format) or, with ``demo``, the demo world.

    Args:
        drop: drop folder (local; the nightly fetches remote incoming drops first).
        truth: demo ground truth folder (kept apart, for evaluation only).
        params: the params.yaml to read.
        repo_root: the project (git + DVC) root that ``data/`` lives under.
        seed: demo world seed (default ``project.seed``).
        items: demo world listings (default ``world.items``).
        queries: demo world queries (default ``world.queries``).
        reuse_existing: a drop id already in ``data/raw`` is reported, not an error (the demo
            re-runs on the same world); BYO ingest keeps it an error.
        demo: generate (or reuse) the built-in demo world instead of ``drop``.
        accept_volume: lift the volume-vs-history bound for this drop (a real jump).
        origin: where ``drop`` was copied from (a remote incoming location), recorded as its
            source.

    Raises:
        BadInput: neither a drop nor ``demo`` was given, or the drop is unusable.
        GateFailed: the drop failed validation; nothing was added.
    """
    log = get_run_logger()
    settings = load_settings(Path(params))
    root = Path(repo_root).resolve()
    if drop is None and not demo:
        raise BadInput(
            "no drop to ingest: pass a drop folder, or demo=True for the built-in demo world "
            "(`vsearch demo`)"
        )
    timings: list[dict[str, Any]] = []
    world_reused = False
    if drop is None:
        the_seed = seed if seed is not None else settings.project.seed
        with timed(timings, WORLD) as entry:
            world_reused = steps.demo_world_ready(
                settings, root, seed=the_seed, items=items, queries=queries
            )
            entry["ran"] = not world_reused
            drop_path, truth_path = generate_demo_drop(settings, root, the_seed, items, queries)
    else:
        drop_path, truth_path = Path(drop), Path(truth) if truth else None
    started = time.perf_counter()
    # The same demo world, already ingested (validated then): not validated again.
    existing = (
        steps.reused_demo_drop(drop_path, settings, root)
        if world_reused and reuse_existing
        else None
    )
    if existing is None:
        result, report_path = validate(drop_path, settings, root, accept_volume)
        existing = steps.existing_drop(result.drop_id, settings, root) if reuse_existing else None
    if existing is not None:
        log.info("drop %s already ingested (dvc %s): reusing", existing.drop_id, existing.dvc_hash)
        res = existing
    else:
        staged = stage(drop_path, result, report_path, settings, root, truth_path, origin)
        res = version(staged, settings, root)
    record(res, settings, root)
    window = select_window(settings, root)
    report(res, reused=existing is not None)
    timings.append(row(INGEST, existing is None, time.perf_counter() - started))
    log.info("drop %s at %s, dvc hash %s", res.drop_id, res.raw_path, res.dvc_hash)
    return {
        **res.to_dict(),
        "window": window,
        "flow_run_id": str(flow_run.id),
        "timings": timings,
    }
