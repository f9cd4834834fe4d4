"""The nightly deployment's process: start it in the background, find it, stop it.

Why a background process: a Prefect cron schedule needs a running server *and* something that
executes the scheduled runs (DESIGN.md section 11). ``python -m flows.deploy`` is that
something (Prefect's ``Flow.serve``: it registers the deployment with its schedule and runs
what comes due). Like the MLflow and Prefect servers it runs in its own session, its pid and
log under ``services.state_dir``; ``vsearch services down`` stops it with them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vsearch.processes import pid_alive, stop_group
from vsearch.services import TELEMETRY_OFF, _state_dir, client_env
from vsearch.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "deploy.json"
LOG_FILE = "deploy.log"
FLOW_NAME = "nightly"
DEPLOYMENT = "vsearch-nightly"  # flows.deploy.DEPLOYMENT (kept import-free of Prefect here)
_POLL_S = 1.0


def _state_path(settings: Settings) -> Path:
    return _state_dir(settings.services) / STATE_FILE


def running_pid(settings: Settings) -> int | None:
    """The deployment process's pid when it is alive."""
    path = _state_path(settings)
    if not path.is_file():
        return None
    pid = int(json.loads(path.read_text()).get("pid") or 0)
    return pid if pid and pid_alive(pid) else None


async def _deployment(name: str) -> Any | None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            return await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None


def deployment_info() -> dict[str, Any] | None:
    """The nightly deployment as the Prefect server knows it (``None`` if not registered)."""
    dep = asyncio.run(_deployment(f"{FLOW_NAME}/{DEPLOYMENT}"))
    if dep is None:
        return None
    crons = [getattr(s.schedule, "cron", None) for s in (dep.schedules or [])]
    return {"id": str(dep.id), "name": f"{FLOW_NAME}/{DEPLOYMENT}", "cron": [c for c in crons if c]}


def deploy_up(settings: Settings, root: Path, params: Path, timeout_s: float) -> dict[str, Any]:
    """Start the deployment process (reused when running); wait until it is registered.

    Raises:
        RuntimeError: it exited or did not register within ``timeout_s`` (see its log).
    """
    state_dir = _state_dir(settings.services)
    log_path = state_dir / LOG_FILE
    pid = running_pid(settings)
    if pid is None:
        state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **TELEMETRY_OFF, **client_env(settings.services)}
        argv = [sys.executable, "-m", "flows.deploy", "--repo-root", str(root)]
        argv += ["--params", str(params)]
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        pid = proc.pid
        _state_path(settings).write_text(json.dumps({"pid": pid, "log": str(log_path)}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise RuntimeError(f"the nightly deployment process exited; see {log_path}")
        info = deployment_info()
        if info is not None:
            return {**info, "pid": pid, "log": str(log_path)}
        time.sleep(_POLL_S)
    raise RuntimeError(f"the nightly deployment did not register in {timeout_s:.0f}s; {log_path}")


def deploy_down(settings: Settings) -> bool:
    """Stop the deployment process; ``True`` when one was running."""
    pid = running_pid(settings)
    _state_path(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    stop_group(pid)
    return True


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
