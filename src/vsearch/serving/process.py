"""Start the BentoML service as a process: in the foreground (``vsearch serve``) or in the
background until it answers (tests, the demo).

Why a subprocess of ``bentoml serve``: that is how the service runs in production too (its own
worker processes, BentoML's HTTP layer, metrics); the project root and params file travel as
environment variables because BentoML imports the service module itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from vsearch.services import TELEMETRY_OFF

SERVICE_IMPORT = "vsearch.serving.service:VSearchService"
PARAMS_ENV = "VSEARCH_PARAMS"  # the params file (relative to the root), read by the service
ROOT_ENV = "VSEARCH_ROOT"  # the project root relative settings paths resolve against
READY_PATH = "/readyz"  # 200 once a pipeline is loaded
LIVE_PATH = "/livez"  # 200 once the server answers (also without a release)
_POLL_S = 0.5


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


def serve_foreground(host: str, port: int, params: Path, root: Path) -> int:
    """Run the service until interrupted; returns its exit code."""
    try:
        return subprocess.call(_command(host, port), env=_env(params, root), cwd=root)
    except KeyboardInterrupt:
        return 0


def start_background(
    host: str,
    port: int,
    params: Path,
    root: Path,
    log_file: Path,
    timeout_s: float,
    wait_path: str = READY_PATH,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the service and wait until ``wait_path`` answers 200 (``RuntimeError`` if not).

    Args:
        wait_path: ``/readyz`` (a pipeline is loaded) or ``/livez`` (the server is up, with
            or without a release).
        env: extra environment for the service (e.g. the admin token variable).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            _command(host, port),
            env=_env(params, root, env),
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://{host}:{port}{wait_path}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}; see {log_file}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(_POLL_S)
    stop(proc)
    raise RuntimeError(f"service not ready after {timeout_s:.0f} s; see {log_file}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the service's process group and wait for it."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


DETACHED_STATE = "serving.json"  # pid + url of the service `vsearch demo` leaves running


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
    try:
        if httpx.get(url + LIVE_PATH, timeout=2).status_code == 200:
            return {"url": url, "reused": True}
    except httpx.HTTPError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    log_file = state_dir / "serving.log"
    proc = start_background(host, port, params, root, log_file, timeout_s, LIVE_PATH, env)
    (state_dir / DETACHED_STATE).write_text(json.dumps({"pid": proc.pid, "url": url}))
    return {"url": url, "pid": proc.pid, "log": str(log_file), "reused": False}


def stop_detached(state_dir: Path) -> bool:
    """Stop the service :func:`ensure_detached` started; ``True`` when one was running."""
    from vsearch.processes import pid_alive, stop_group

    path = state_dir / DETACHED_STATE
    if not path.is_file():
        return False
    pid = int(json.loads(path.read_text())["pid"])
    path.unlink()
    if not pid_alive(pid):
        return False
    stop_group(pid)  # waits until it exited: its port is free for a successor
    return True
