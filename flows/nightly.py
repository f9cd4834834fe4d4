"""Prefect flow ``nightly``: ingest → validate → mine → train → evaluate → index → promotion.

Thin wiring of the three flows that do the work, as subflows (each shows as its own run in the
Prefect UI): ``ingest`` (validation stops everything on a critical failure, before any
training), ``training`` (DVC stages: unchanged data and params skip every stage), ``promotion``
(candidate index, service load run, gates; nothing ships on a failed gate). Re-running on the
same drop therefore costs seconds and changes nothing. ``flows/deploy.py`` schedules it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled

from flows.ingest import ingest_flow
from flows.promotion import promotion_flow
from flows.training import training_flow
from vsearch.local.deployment import nightly_lock


@flow(name="nightly")
def nightly_flow(
    drop: str | None = None,
    truth: str | None = None,
    repo_root: str = ".",
    params: str = "params.yaml",
) -> dict[str, Any] | Cancelled:
    """One night of the offline loop on ``drop`` (default: the built-in demo world).

    Args:
        drop: a new drop folder in the contract format; ``None`` uses the demo world (reused
            when already ingested, as on every night without new data).
        truth: the drop's ground truth (demo worlds only; evaluation needs it).
        repo_root: the project (git + DVC) root.
        params: the params.yaml to read.
    """
    log = get_run_logger()
    lock = nightly_lock(Path(repo_root))
    if lock is None:  # a scheduled night and a manual run overlap: never two at once
        msg = "another nightly run holds the project lock; this one did nothing"
        log.warning(msg)
        return Cancelled(message=msg)
    with lock:
        return _night(drop, truth, repo_root, params)


def _night(drop: str | None, truth: str | None, repo_root: str, params: str) -> dict[str, Any]:
    log = get_run_logger()
    ingested = ingest_flow(
        drop=drop, truth=truth, params=params, repo_root=repo_root, reuse_existing=drop is None
    )
    log.info("drop %s validated and versioned (dvc %s)", ingested["drop_id"], ingested["dvc_hash"])
    trained = training_flow(repo_root=repo_root)
    promoted = promotion_flow(repo_root=repo_root)
    return {
        "ingest": ingested,
        "training": trained,
        "promotion": promoted,
        "flow_run_id": str(flow_run.id),
    }
