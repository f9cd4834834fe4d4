"""Start the BentoML search service as a process: in the foreground (``vsearch serve``), in the
background until it answers (tests, the promotion gate's load run), or detached for the demo.

Why a subprocess of ``bentoml serve``: that is how the service runs in production too (its own
worker processes, BentoML's HTTP layer, metrics); the project root and params file travel as
environment variables (:data:`vsearch.local.env.PARAMS_ENV`, :data:`~vsearch.local.env.ROOT_ENV`)
because BentoML imports the service module itself. The service is named by its import string,
so nothing here imports :mod:`vsearch.serving`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from vsearch.local.env import LIVE_PATH, PARAMS_ENV, READY_PATH, ROOT_ENV, TELEMETRY_OFF
from vsearch.local.processes import (
    Started,
    spawn,
    stop_recorded,
    wait_until,
    write_record,
)
from vsearch.local.processes import stop as stop_process

log = logging.getLogger(__name__)
SERVICE_IMPORT = "vsearch.serving.service:VSearchService"
DETACHED_STATE = "serving.json"  # pid + url of the service `vsearch demo` leaves running
DETACHED_LOG = "serving.log"
STOP_GRACE_S = 20.0  # default of serving.stop_grace_s where no settings are at hand
_POLL_S = 0.5
_PROBE_TIMEOUT_S = 2.0

__all__ = [
    "LIVE_PATH",
    "READY_PATH",
    "ensure_detached",
    "serve_foreground",
    "start_background",
    "stop",
    "stop_detached",
]


def _command(host: str, port: int) -> list[str]:
    bentoml = Path(sys.executable).with_name("bentoml")
    return [str(bentoml), "serve", SERVICE_IMPORT, "--host", host, "--port", str(port)]


def _env(params: Path, root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        **TELEMETRY_OFF,
        **(extra or {}),
        ROOT_ENV: str(root.resolve()),
        PARAMS_ENV: str(params if params.is_absolute() else (root / params)),
    }


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=_PROBE_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return False


def serve_foreground(
    host: str, port: int, params: Path, root: Path, grace_s: float = STOP_GRACE_S
) -> int:
    """Run the service until it exits or this process gets SIGTERM/SIGINT; returns its exit
    code (0 when stopped on request).

    Why not just ``subprocess.call``: a process manager or ``docker stop`` sends SIGTERM to
    this process only; without forwarding, it would exit and leave BentoML's server running
    with the port bound. The server runs in a process group of its own; a signal here stops
    that whole group (SIGTERM, then SIGKILL after ``grace_s``, by
    :func:`vsearch.local.processes.stop`)
    and this function returns only once it is gone.
    """
    proc = subprocess.Popen(
        _command(host, port),
        env=_env(params, root),
        cwd=root,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl+C reaches it through us, once, as SIGTERM
    )
    started = Started.child(proc)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not received and proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_POLL_S)
        if received:
            log.info("signal %d: stopping the service (grace %.0f s)", received[0], grace_s)
            stop_process(started, grace_s)
            return 0
        return proc.returncode
    finally:
        if proc.poll() is None:  # an exception on the way out: never leave it behind
            stop_process(started, grace_s)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start_background(
    host: str,
    port: int,
    params: Path,
    root: Path,
    log_file: Path,
    timeout_s: float,
    wait_path: str = READY_PATH,
    env: dict[str, str] | None = None,
) -> Started:
    """Start the service and wait until ``wait_path`` answers 200.

    Args:
        wait_path: ``/readyz`` (a pipeline is loaded) or ``/livez`` (the server is up, with
            or without a release).
        env: extra environment for the service (e.g. the admin token variable).

    Raises:
        StartFailed: (a ``RuntimeError``) it exited or was not ready in ``timeout_s``.
    """
    started = spawn(_command(host, port), log_file, _env(params, root, env), cwd=root)
    url = f"http://{host}:{port}{wait_path}"
    wait_until(
        started,
        lambda: True if _answers(url) else None,
        name="service",
        log_file=log_file,
        timeout_s=timeout_s,
        poll_s=_POLL_S,
        stop_grace_s=STOP_GRACE_S,
    )
    return started


def stop(started: Started) -> None:
    """Terminate the service's process group and wait for it."""
    stop_process(started, STOP_GRACE_S)


def ensure_detached(
    host: str,
    port: int,
    params: Path,
    root: Path,
    state_dir: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    """Leave the service running in the background (reused when it already answers).

    Its pid goes to ``state_dir/serving.json`` so ``vsearch services down`` can stop it with
    the servers; its log to ``state_dir/serving.log``.
    """
    url = f"http://{host}:{port}"
    if _answers(url + LIVE_PATH):
        return {"url": url, "reused": True}
    log_file = state_dir / DETACHED_LOG
    started = start_background(host, port, params, root, log_file, timeout_s, LIVE_PATH, env)
    how = {"host": host, "port": port, "params": str(params), "root": str(root.resolve())}
    write_record(state_dir / DETACHED_STATE, {**started.record(), "url": url, **how})
    return {"url": url, "pid": started.pid, "log": str(log_file), "reused": False}


def stop_detached(state_dir: Path, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop the service :func:`ensure_detached` started; ``True`` when one was running.

    Waits until it exited, so its port is free for a successor.
    """
    return stop_recorded(state_dir / DETACHED_STATE, grace_s)
