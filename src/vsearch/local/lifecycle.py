"""``vsearch services down | up | status`` over everything this package starts.

Why a module of its own: ``down`` stops four kinds of process (the MLflow and Prefect servers,
the deployments' ``serve`` process for nightly and baselines, the demo's search service), and
``up`` must bring back every one of them. The servers' own state file already says how to
restart them; the deployment process and the search service are started by other commands
(``vsearch deploy``, ``vsearch demo``) with a project root and a params file, so ``down``
writes what it stopped, and how to start it again, into ``stopped.json`` under
``services.state_dir``, and ``up`` restarts those and clears them. Without that, the Prefect
server would come back with the deployments registered but nothing executing them ("Not Ready"
in the UI): their cron schedules would silently stop firing. ``status`` says so whenever a
registered schedule has no runner.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from vsearch.fsio import atomic_write_json
from vsearch.local.deployment import (
    STATE_FILE as DEPLOY_STATE,
)
from vsearch.local.deployment import (
    deploy_down,
    deploy_up,
    deployment_info,
    running_pid,
)
from vsearch.local.env import admin_token, apply_client_env, state_dir
from vsearch.local.processes import read_record, recorded
from vsearch.local.servers import down, status, up
from vsearch.local.service import DETACHED_STATE, ensure_detached, stop_detached
from vsearch.settings import Settings

log = logging.getLogger(__name__)

STOPPED_FILE = "stopped.json"
DEPLOYMENT = "deployments (nightly, baselines)"  # one serve process runs both
SERVICE = "search service"
NO_RUNNER = (
    "the deployments (nightly, baselines) are registered on the Prefect server but their serve "
    "process is not running: their schedules will not fire; run `vsearch services up` (after "
    "`services down`) or `vsearch deploy`"
)


def _stopped_path(settings: Settings) -> Path:
    return state_dir(settings.services) / STOPPED_FILE


def read_stopped(settings: Settings) -> dict[str, dict[str, Any]]:
    """What ``down`` stopped and ``up`` has not brought back yet (name → how to start it)."""
    path = _stopped_path(settings)
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_stopped(settings: Settings, stopped: dict[str, dict[str, Any]]) -> None:
    path = _stopped_path(settings)
    if stopped:
        atomic_write_json(path, stopped, sort_keys=False)
    else:
        path.unlink(missing_ok=True)


def _how(record: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The start arguments a state record kept (``None`` for a record without them)."""
    if not record or any(record.get(k) in (None, "") for k in keys):
        return None
    return {k: record[k] for k in keys}


def down_all(settings: Settings) -> list[str]:
    """Stop the deployments' process, the search service and the servers; remember how to
    start the first two again. Returns the names of what was stopped."""
    folder = state_dir(settings.services)
    stopped = read_stopped(settings)
    names: list[str] = []
    dep = _how(read_record(folder / DEPLOY_STATE), ("root", "params"))
    if deploy_down(settings):
        names.append(DEPLOYMENT)
        if dep is not None:
            stopped[DEPLOYMENT] = dep
    svc = _how(read_record(folder / DETACHED_STATE), ("host", "port", "params", "root"))
    if stop_detached(folder, settings.serving.stop_grace_s):
        names.append(SERVICE)
        if svc is not None:
            stopped[SERVICE] = svc
    names += down(settings.services)
    _write_stopped(settings, stopped)
    return names


def up_all(settings: Settings) -> dict[str, Any]:
    """Start (or reuse) the servers, then bring back what ``down`` stopped: the deployments'
    process, then the search service. Returns each one's URL/pid/log.

    Raises:
        StartFailed: (a ``RuntimeError``) a server, the deployment or the service did not
            start; what did start keeps running and what did not stays in ``stopped.json``.
    """
    out: dict[str, Any] = {
        name: {"url": i.url, "pid": i.pid, "log": i.log_file}
        for name, i in up(settings.services).items()
    }
    stopped = read_stopped(settings)
    if DEPLOYMENT in stopped:
        how = stopped[DEPLOYMENT]
        apply_client_env(settings.services)  # this process polls Prefect for the registration
        info = deploy_up(
            settings, Path(how["root"]), Path(how["params"]), settings.schedule.register_timeout_s
        )
        out[DEPLOYMENT] = info
        del stopped[DEPLOYMENT]
        _write_stopped(settings, stopped)
    if SERVICE in stopped:
        how = stopped[SERVICE]
        s = settings.serving
        out[SERVICE] = ensure_detached(
            str(how["host"]),
            int(how["port"]),
            Path(how["params"]),
            Path(how["root"]),
            state_dir(settings.services),
            s.start_timeout_s,
            env={s.admin_token_env: admin_token(settings)},
        )
        del stopped[SERVICE]
        _write_stopped(settings, stopped)
    return out


def status_all(settings: Settings) -> dict[str, Any]:
    """The servers, the deployments (registered? their runner?), the search service, what
    ``up`` would bring back, and the problems found (a registered schedule without a runner)."""
    out: dict[str, Any] = dict(status(settings.services))
    problems: list[str] = []
    runner = running_pid(settings)
    dep: dict[str, Any] = {"runner_pid": runner, "registered": None}
    if out.get("prefect", {}).get("healthy") or settings.services.prefect.api_url:
        apply_client_env(settings.services)
        try:
            info = deployment_info()
        except Exception as exc:  # the server answered /health but not this: say so
            dep["error"] = f"{type(exc).__name__}: {exc}"
        else:
            dep["registered"] = info is not None
            if info is not None:
                dep.update(info)
                if runner is None:
                    problems.append(NO_RUNNER)
    out[DEPLOYMENT] = dep
    svc = recorded(read_record(state_dir(settings.services) / DETACHED_STATE))
    out[SERVICE] = {"pid": svc.pid if svc else None}
    out["stopped"] = sorted(read_stopped(settings))
    out["problems"] = problems
    return out
