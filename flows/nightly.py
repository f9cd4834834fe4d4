"""Prefect flow ``nightly``: incoming drops → ingest → training → promotion, or nothing at all.

Thin wiring of the flows that do the work, as subflows (each shows as its own run in the
Prefect UI). A scheduled night (no arguments) takes the new drops of the incoming location
(``ingest.incoming``: a folder or an fsspec URL), oldest first: each is validated, versioned
and recorded by the ``ingest`` flow; one that fails validation is moved to
``<incoming>/rejected/`` with its report and the night goes on with the next. Then, up front,
the night decides whether there is anything to do: no new drop and ``dvc status`` clean for
the window and learning stages (same code, params and data) means no training and no
promotion, and the night says so. Otherwise ``training`` (DVC stages; unchanged ones are
skipped) and ``promotion`` (candidate index, service load run, gates) run on the window.
The comparison baselines are not part of a night (``flows/baselines.py``, weekly). The night's
artifact ends with a table of each stage's wall time (ran or skipped), also returned as
``timings``.

The demo world is generated and ingested only with ``demo=True`` (``vsearch demo``), never by
a scheduled night; ``drop=...`` runs one night on one given drop (``vsearch pipeline --drop``).
``flows/deploy.py`` schedules it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Cancelled

from flows.ingest import ingest_flow
from flows.promotion import promotion_flow
from flows.training import STAGES, training_flow
from vsearch.contracts import read_ledger
from vsearch.data import dvc, incoming
from vsearch.data import ingest as steps
from vsearch.errors import BadInput, GateFailed
from vsearch.local.deployment import nightly_lock
from vsearch.local.timing import timed, timing_markdown
from vsearch.settings import Settings, load_settings

ARTIFACT_KEY = "nightly-summary"
WINDOW_STAGE = "window"
PROMOTION = "promotion"  # timing row: skipped = nothing new to ship
TRAINING = "training"  # timing row of a training flow that failed (else one row per stage)
CHANGES = "changes"  # timing row: window refresh + dvc status (what changed since the last run)


@task(name="find-new-drops", cache_policy=NO_CACHE)
def find_new_drops(settings: Settings, root: Path) -> list[incoming.IncomingDrop]:
    """New drop folders in the incoming location (not in the ledger), oldest first."""
    return incoming.list_new(settings.ingest.incoming, root, steps.ingested_ids(settings, root))


@task(name="find-repeated-drops", cache_policy=NO_CACHE)
def find_repeated_drops(settings: Settings, root: Path) -> list[incoming.IncomingDrop]:
    """Drop folders in the incoming location whose drop id is already in the ledger."""
    ids = steps.ingested_ids(settings, root)
    return incoming.list_repeated(settings.ingest.incoming, root, ids)


@task(name="fetch-drop", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def fetch_drop(settings: Settings, root: Path, drop: incoming.IncomingDrop) -> Path:
    """A local folder with the drop (a copy when the incoming location is remote)."""
    scratch = steps.resolve_paths(settings, root)["scratch"]
    return incoming.fetch(drop, settings.ingest.incoming, root, scratch)


@task(name="set-aside", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def set_aside(
    settings: Settings,
    root: Path,
    drop: incoming.IncomingDrop,
    where: str,
    reason: str | None = None,
    validated: bool = True,
) -> str:
    """Move an incoming drop to ``ingested/`` or ``rejected/`` (a rejected drop that was
    ``validated`` gets its validation report beside it)."""
    report = steps.resolve_paths(settings, root)["reports"] / f"{drop.drop_id}.json"
    return incoming.set_aside(
        drop,
        settings.ingest.incoming,
        root,
        where,
        reason=reason,
        report=report if reason is not None and validated else None,
    )


@task(name="pending-changes", cache_policy=NO_CACHE)
def pending_changes(settings: Settings, root: Path) -> dict[str, Any]:
    """Refresh the window from the ledger (params may have changed it), then ``dvc status``
    of the window and learning stages: what changed since they last ran ({} = nothing)."""
    if not read_ledger(steps.resolve_paths(settings, root)["ledger"]):
        return {}
    steps.select_window(settings, root)
    return dvc.status([WINDOW_STAGE, *STAGES], root)


@flow(name="incoming")
def incoming_flow(
    repo_root: str = ".", params: str = "params.yaml", accept_volume: bool = False
) -> dict[str, list]:
    """Ingest each new drop of ``ingest.incoming``, oldest first; set aside the ones that fail.

    Each drop is one ``ingest`` subflow (validate, version, record, window). A drop that fails
    validation (or is unusable: a broken drop.json, a bad id) moves to ``<incoming>/rejected/``
    with its report and the reason; the others go on. So does a drop whose id is already
    ingested (drops are immutable). Ingested drops move to ``ingested/``.

    Returns:
        ``{"ingested": [ingest results], "rejected": [{"drop", "moved_to", "reason"}]}``.
    """
    log = get_run_logger()
    settings = load_settings(Path(params))
    root = Path(repo_root).resolve()
    ingested: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    for drop in find_repeated_drops(settings, root):
        reason = incoming.repeated_reason(drop)
        where = set_aside(settings, root, drop, incoming.REJECTED, reason=reason, validated=False)
        log.warning("drop %s rejected, moved to %s: %s", drop.name, where, reason)
        rejected.append({"drop": drop.name, "moved_to": where, "reason": reason})
    for drop in find_new_drops(settings, root):
        local = fetch_drop(settings, root, drop)
        try:
            res = ingest_flow(
                drop=str(local),
                params=params,
                repo_root=repo_root,
                accept_volume=accept_volume,
                origin=incoming.origin(drop, settings.ingest.incoming),
            )
        except (GateFailed, BadInput) as exc:
            where = set_aside(settings, root, drop, incoming.REJECTED, reason=str(exc))
            log.warning("drop %s rejected, moved to %s: %s", drop.name, where, exc)
            rejected.append({"drop": drop.name, "moved_to": where, "reason": str(exc)})
            continue
        finally:
            if local != Path(drop.path):  # a local copy of a remote drop
                shutil.rmtree(local, ignore_errors=True)
        set_aside(settings, root, drop, incoming.INGESTED)
        ingested.append(res)
    return {"ingested": ingested, "rejected": rejected}


def _summary(
    settings: Settings,
    ingested: list[dict[str, Any]],
    rejected: list[dict[str, str]],
    pending: dict[str, Any],
    ran: bool,
    timings: list[dict[str, Any]] | None = None,
) -> str:
    """The night's markdown artifact; with ``timings``, a table of each stage's wall time."""
    lines = ["# Nightly", ""]
    if not ran:
        lines.append(
            f"**Nothing to do**: no new drop in `{settings.ingest.incoming}` and no change of "
            "code, params or data since the last run (`dvc status` clean): no training, no "
            "promotion."
        )
    for res in ingested:
        lines.append(f"- ingested {res.get('kind', 'snapshot')} drop `{res['drop_id']}`")
    for rej in rejected:
        reason = " ".join(rej["reason"].split())[:300]
        lines.append(f"- rejected `{rej['drop']}` → `{rej['moved_to']}`: {reason}")
    if ran and not ingested:
        lines.append(f"- no new drop; changed since the last run: {', '.join(sorted(pending))}")
    if timings:
        lines += ["", "## Time per stage", "", timing_markdown(timings)]
    return "\n".join(lines) + "\n"


def _ingest_rows(ingested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ingests' timing rows, named by drop when the night took more than one."""
    many = len(ingested) > 1
    return [
        {**r, "stage": f"{r['stage']} {res['drop_id']}" if many else r["stage"]}
        for res in ingested
        for r in res.get("timings") or []
    ]


@flow(name="nightly")
def nightly_flow(
    drop: str | None = None,
    truth: str | None = None,
    repo_root: str = ".",
    params: str = "params.yaml",
    demo: bool = False,
    accept_volume: bool = False,
    first_release: bool | None = None,
) -> dict[str, Any] | Cancelled:
    """One night of the offline loop.

    Args:
        drop: one drop folder to run the night on (``vsearch pipeline --drop``); ``None``
            (a scheduled night) takes the new drops of ``ingest.incoming``.
        truth: the drop's ground truth (demo worlds only).
        repo_root: the project (git + DVC) root.
        params: the params.yaml to read.
        demo: generate (or reuse) and ingest the built-in demo world (``vsearch demo``).
        accept_volume: lift the volume-vs-history bound for the drops of this night.
        first_release: passed to the promotion (``True``: assert there is no champion yet;
            ``None``: a missing champion alias is the first release).
    """
    log = get_run_logger()
    lock = nightly_lock(Path(repo_root))
    if lock is None:  # a scheduled night and a manual run overlap: never two at once
        msg = "another nightly run holds the project lock; this one did nothing"
        log.warning(msg)
        return Cancelled(message=msg)
    with lock:
        return _night(drop, truth, repo_root, params, demo, accept_volume, first_release)


def _night(
    drop: str | None,
    truth: str | None,
    repo_root: str,
    params: str,
    demo: bool,
    accept_volume: bool,
    first_release: bool | None,
) -> dict[str, Any]:
    log = get_run_logger()
    root = Path(repo_root).resolve()
    settings = load_settings(Path(params))
    rejected: list[dict[str, str]] = []
    if drop is not None or demo:
        one = ingest_flow(
            drop=drop,
            truth=truth,
            params=params,
            repo_root=repo_root,
            demo=demo and drop is None,
            reuse_existing=demo and drop is None,
            accept_volume=accept_volume,
        )
        log.info("drop %s validated and versioned (dvc %s)", one["drop_id"], one["dvc_hash"])
        ingested = [one]
    else:
        taken = incoming_flow(repo_root=repo_root, params=params, accept_volume=accept_volume)
        ingested, rejected = taken["ingested"], taken["rejected"]
    timings = _ingest_rows(ingested)
    with timed(timings, CHANGES):
        pending = pending_changes(settings, root)
    # The demo always shows its run (DVC skips unchanged stages in seconds).
    run_training = demo or bool(ingested) or bool(pending)
    md = _summary(settings, ingested, rejected, pending, run_training)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=md, description="what this night did")
    out: dict[str, Any] = {
        "ingest": ingested[-1] if ingested else None,
        "ingested": ingested,
        "rejected": rejected,
        "flow_run_id": str(flow_run.id),
    }
    if not run_training:
        log.info(
            "nothing to do: no new drop in %s and no change since the last run",
            settings.ingest.incoming,
        )
        return {
            **out,
            "nothing_to_do": True,
            "training": None,
            "promotion": None,
            "timings": timings,
        }
    try:
        with timed(timings, TRAINING):  # one row if it fails; its stages' rows when it ran
            trained = training_flow(repo_root=repo_root)
        timings[-1:] = trained["timings"]
        with timed(timings, PROMOTION) as entry:
            promoted = promotion_flow(repo_root=repo_root, first_release=first_release)
            entry["ran"] = bool(promoted.get("shipped"))
    finally:  # a failed gate too: the artifact says where the time went
        md = _summary(settings, ingested, rejected, pending, run_training, timings)
        create_markdown_artifact(key=ARTIFACT_KEY, markdown=md, description="what this night did")
    return {
        **out,
        "nothing_to_do": False,
        "training": trained,
        "promotion": promoted,
        "timings": timings,
    }
