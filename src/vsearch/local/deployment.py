"""The deployments' process (nightly, weekly baselines): start it in the background, stop it.

Why a background process: a Prefect cron schedule needs a running server *and* something that
executes the scheduled runs. ``python -m flows.deploy`` is that something (Prefect's
``Flow.serve``: it registers the deployment with its schedule and runs what comes due). Like the
MLflow and Prefect servers it runs in its own session (started and stopped with
:mod:`vsearch.local.processes`), its pid and log under ``services.state_dir``;
``vsearch services down`` stops it with them. It serves two deployments: the nightly and the
weekly baselines (:func:`start_baselines_run` asks it for a baselines run now). The project
lock lives here too: it keeps the deployments' runs and a manual run from overlapping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from vsearch.local.env import TELEMETRY_OFF, client_env, state_dir
from vsearch.local.processes import (
    read_record,
    recorded,
    spawn,
    stop_recorded,
    wait_until,
    write_record,
)
from vsearch.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "deploy.json"
LOG_FILE = "deploy.log"
FLOW_NAME = "nightly"
DEPLOYMENT = "vsearch-nightly"  # the deployment's name (flows.deploy serves it under this)
BASELINES_FLOW = "baselines"
BASELINES_DEPLOYMENT = "vsearch-baselines"  # the weekly baselines (flows/baselines.py)
_POLL_S = 1.0


def _state_path(settings: Settings) -> Path:
    return state_dir(settings.services) / STATE_FILE


def running_pid(settings: Settings) -> int | None:
    """The deployment process's pid when it is alive (and still the process we started)."""
    found = recorded(read_record(_state_path(settings)))
    return found.pid if found is not None else None


async def _deployment(name: str) -> Any | None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            return await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None


def _describe(dep: Any, name: str) -> dict[str, Any]:
    crons = [getattr(s.schedule, "cron", None) for s in (dep.schedules or [])]
    status = getattr(dep, "status", None)
    return {
        "id": str(dep.id),
        "name": name,
        "cron": [c for c in crons if c],
        "prefect_status": getattr(status, "value", status),  # READY while a runner polls
    }


def deployment_info() -> dict[str, Any] | None:
    """The nightly deployment as the Prefect server knows it, with the weekly baselines one
    under ``"baselines"`` (``None`` until both are registered)."""
    nightly_name = f"{FLOW_NAME}/{DEPLOYMENT}"
    baselines_name = f"{BASELINES_FLOW}/{BASELINES_DEPLOYMENT}"
    nightly = asyncio.run(_deployment(nightly_name))
    baselines = asyncio.run(_deployment(baselines_name))
    if nightly is None or baselines is None:
        return None
    return {**_describe(nightly, nightly_name), "baselines": _describe(baselines, baselines_name)}


def start_baselines_run() -> str:
    """Ask the deployment process to run the baselines flow now, in the background.

    Returns the flow run's id at once (Prefect's ``run_deployment`` with ``timeout=0``): the
    run shows in the Prefect UI; the caller does not wait for it.
    """
    from prefect.deployments import run_deployment

    run = run_deployment(f"{BASELINES_FLOW}/{BASELINES_DEPLOYMENT}", timeout=0)
    return str(run.id)


def deploy_up(settings: Settings, root: Path, params: Path, timeout_s: float) -> dict[str, Any]:
    """Start the deployment process (reused when running); wait until it is registered.

    Raises:
        StartFailed: (a ``RuntimeError``) it exited or did not register within ``timeout_s``
            (see its log).
    """
    folder = state_dir(settings.services)
    log_path = folder / LOG_FILE
    started = recorded(read_record(_state_path(settings)))
    if started is None:
        env = {**os.environ, **TELEMETRY_OFF, **client_env(settings.services)}
        argv = [sys.executable, "-m", "flows.deploy", "--repo-root", str(root)]
        argv += ["--params", str(params)]
        started = spawn(argv, log_path, env, cwd=root)
        record = {**started.record(), "log": str(log_path), "root": str(root)}
        write_record(_state_path(settings), {**record, "params": str(params)})
    info = wait_until(
        started,
        deployment_info,
        name="the deployments' process",
        log_file=log_path,
        timeout_s=timeout_s,
        poll_s=_POLL_S,
        stop_on_timeout=False,  # it may still register later; `services down` stops it
    )
    return {**info, "pid": started.pid, "log": str(log_path)}


def deploy_down(settings: Settings) -> bool:
    """Stop the deployment process; ``True`` when one was running."""
    return stop_recorded(_state_path(settings))


LOCK_FILE = ".vsearch-nightly.lock"  # at the repo root: one nightly run per project at a time


class _Lock:
    """An exclusive ``flock`` on a file, released on exit (and by the OS if the process dies)."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh

    def __enter__(self) -> _Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def nightly_lock(repo_root: Path) -> _Lock | None:
    """Take the project's nightly lock without waiting; ``None`` when another run holds it.

    Why: the cron deployment and a manual ``vsearch pipeline``/``make demo`` can overlap, and
    two nights at once would fight over DVC's repo lock and the index release pointer.
    """
    import fcntl

    fh = (repo_root / LOCK_FILE).open("a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return _Lock(fh)
