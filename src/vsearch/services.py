"""Embedded services: a real MLflow tracking server and a real Prefect server as local processes.

Why: vsearch's users live in the MLflow and Prefect UIs, and our tests must exercise the real
servers, not mocks or Prefect's ephemeral mode. One module starts both (in parallel: MLflow is
healthy after ~10 s, Prefect after ~17 s), waits until their health endpoints answer, records
pids and URLs under ``services.state_dir`` and stops them again. ``make demo``, the CLI
(``vsearch services up|down|status``) and the integration tests all use it.

Defaults are local (SQLite, a local artifact folder, absolute URIs so a changed working directory
cannot break them); ``services.mlflow.tracking_uri`` / ``services.prefect.api_url`` point at
existing servers instead (production: Postgres-backed MLflow with S3 artifacts, Prefect Cloud or a
shared server), in which case nothing is started.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import typer

from vsearch.errors import BadInput
from vsearch.processes import pid_alive, stop_group
from vsearch.settings import ServicesSettings

log = logging.getLogger(__name__)

STATE_FILE = "services.json"
TELEMETRY_OFF: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
}
_POLL_S = 0.5


class ServiceError(RuntimeError):
    """A server did not become healthy (the message points at its log file)."""


@dataclass
class ServiceInfo:
    """One running (or external) server."""

    name: str
    url: str
    health_url: str
    pid: int | None
    log_file: str | None
    external: bool = False


@dataclass
class ServiceSpec:
    """How to start one server and how to tell it is healthy."""

    name: str
    url: str
    health_url: str
    argv: list[str]
    env: dict[str, str]
    log_file: Path


def _bin(name: str) -> str:
    """Console script next to the running interpreter (the project's venv)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _state_dir(settings: ServicesSettings) -> Path:
    return settings.state_dir.resolve()


def mlflow_uris(settings: ServicesSettings) -> tuple[str, str]:
    """Absolute backend-store and artifact URIs (relative sqlite URIs break on ``cd``)."""
    root = _state_dir(settings) / "mlflow"
    backend = settings.mlflow.backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
    artifacts = settings.mlflow.artifact_root or (root / "artifacts").as_uri()
    return backend, artifacts


def prefect_env(settings: ServicesSettings) -> dict[str, str]:
    """Environment for the Prefect server *and* its clients: own PREFECT_HOME, SQLite, API URL."""
    home = _state_dir(settings) / "prefect"
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": prefect_api_url(settings),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
    }
    if not settings.prefect.api_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    return env


def prefect_api_url(settings: ServicesSettings) -> str:
    p = settings.prefect
    return p.api_url or f"http://{p.host}:{p.port}/api"


def mlflow_tracking_uri(settings: ServicesSettings) -> str:
    m = settings.mlflow
    return m.tracking_uri or f"http://{m.host}:{m.port}"


def client_env(settings: ServicesSettings) -> dict[str, str]:
    """Variables a client process (flow, trainer, test) needs to talk to the services."""
    env = dict(TELEMETRY_OFF)
    env.update(prefect_env(settings))
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    env["MLFLOW_TRACKING_URI"] = mlflow_tracking_uri(settings)
    return env


def apply_client_env(settings: ServicesSettings) -> dict[str, str]:
    """Export :func:`client_env` into this process (before Prefect/MLflow clients are used)."""
    env = client_env(settings)
    os.environ.update(env)
    return env


def _specs(settings: ServicesSettings) -> list[ServiceSpec]:
    state = _state_dir(settings)
    base_env = {**os.environ, **TELEMETRY_OFF}
    specs: list[ServiceSpec] = []
    if not settings.mlflow.tracking_uri:
        m = settings.mlflow
        backend, artifacts = mlflow_uris(settings)
        (state / "mlflow").mkdir(parents=True, exist_ok=True)
        url = f"http://{m.host}:{m.port}"
        specs.append(
            ServiceSpec(
                name="mlflow",
                url=url,
                health_url=f"{url}/health",
                argv=[
                    _bin("mlflow"),
                    "server",
                    "--backend-store-uri",
                    backend,
                    "--artifacts-destination",
                    artifacts,
                    "--host",
                    m.host,
                    "--port",
                    str(m.port),
                    "--workers",
                    "1",
                ],
                env=base_env,
                log_file=state / "mlflow.log",
            )
        )
    if not settings.prefect.api_url:
        p = settings.prefect
        penv = prefect_env(settings)
        Path(penv["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
        specs.append(
            ServiceSpec(
                name="prefect",
                url=f"http://{p.host}:{p.port}",
                health_url=f"{prefect_api_url(settings)}/health",
                argv=[_bin("prefect"), "server", "start", "--host", p.host, "--port", str(p.port)],
                env={**base_env, **penv},
                log_file=state / "prefect.log",
            )
        )
    return specs


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def read_state(settings: ServicesSettings) -> dict[str, ServiceInfo]:
    """What ``up`` recorded (empty if never started)."""
    path = _state_dir(settings) / STATE_FILE
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    return {name: ServiceInfo(**info) for name, info in raw.items()}


def _write_state(settings: ServicesSettings, infos: Mapping[str, ServiceInfo]) -> None:
    path = _state_dir(settings) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in infos.items()}, indent=2))
    tmp.replace(path)


def _start_one(spec: ServiceSpec, timeout_s: float, known: ServiceInfo | None) -> ServiceInfo:
    if known and pid_alive(known.pid) and _healthy(spec.health_url):
        log.info("%s already running at %s (pid %s)", spec.name, spec.url, known.pid)
        return known
    host, port = spec.url.split("//", 1)[1].rsplit(":", 1)
    if _port_in_use(host, int(port)):
        if _healthy(spec.health_url):
            raise BadInput(
                f"{spec.name}: something else already serves {spec.url}; stop it, or point "
                f"services.{spec.name} at it (tracking_uri / api_url) in params.yaml"
            )
        raise BadInput(
            f"{spec.name}: port {port} on {host} is taken; set services.{spec.name}.port"
        )
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    with spec.log_file.open("ab") as out:
        proc = subprocess.Popen(
            spec.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=spec.env,
            start_new_session=True,  # own process group: `down` stops the server and its workers
        )
    log.info("starting %s (pid %d), log %s", spec.name, proc.pid, spec.log_file)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(
                f"{spec.name} exited with code {proc.returncode} while starting; "
                f"see {spec.log_file}"
            )
        if _healthy(spec.health_url):
            log.info("%s healthy at %s", spec.name, spec.url)
            return ServiceInfo(spec.name, spec.url, spec.health_url, proc.pid, str(spec.log_file))
        time.sleep(_POLL_S)
    stop_group(proc.pid)
    raise ServiceError(f"{spec.name} not healthy after {timeout_s:.0f} s; see {spec.log_file}")


def up(settings: ServicesSettings) -> dict[str, ServiceInfo]:
    """Start (or reuse) the local MLflow and Prefect servers, in parallel; wait until healthy."""
    known = read_state(settings)
    specs = _specs(settings)
    with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
        futures = {
            s.name: pool.submit(_start_one, s, settings.start_timeout_s, known.get(s.name))
            for s in specs
        }
        infos: dict[str, ServiceInfo] = {}
        errors: list[str] = []
        for name, fut in futures.items():
            try:
                infos[name] = fut.result()
            except (ServiceError, BadInput) as exc:
                errors.append(str(exc))
    if settings.mlflow.tracking_uri:
        uri = settings.mlflow.tracking_uri
        infos["mlflow"] = ServiceInfo("mlflow", uri, f"{uri}/health", None, None, external=True)
    if settings.prefect.api_url:
        url = settings.prefect.api_url
        infos["prefect"] = ServiceInfo("prefect", url, f"{url}/health", None, None, external=True)
    _write_state(settings, {k: v for k, v in infos.items() if not v.external})
    if errors:
        down(settings)
        raise ServiceError("; ".join(errors))
    return infos


def down(settings: ServicesSettings) -> list[str]:
    """Stop the servers ``up`` started (external ones are left alone). Returns names stopped."""
    stopped = []
    for name, info in read_state(settings).items():
        if info.pid and pid_alive(info.pid):
            stop_group(info.pid)
            stopped.append(name)
    state = _state_dir(settings) / STATE_FILE
    state.unlink(missing_ok=True)
    return stopped


def status(settings: ServicesSettings) -> dict[str, dict[str, object]]:
    """Per service: url, pid, healthy."""
    out: dict[str, dict[str, object]] = {}
    infos = read_state(settings)
    for spec in _specs(settings):
        info = infos.get(spec.name)
        out[spec.name] = {
            "url": spec.url,
            "pid": info.pid if info else None,
            "healthy": _healthy(spec.health_url),
            "log": str(spec.log_file),
        }
    return out


# --- CLI group: vsearch services up | down | status -------------------------------------------

app = typer.Typer(
    help="Local MLflow + Prefect servers (real processes, SQLite).", no_args_is_help=True
)


@app.command("up")
def up_command() -> None:
    """Start MLflow and Prefect locally (reused if already running) and print their URLs."""
    from vsearch.cli_support import emit, get_settings, run_guarded

    def body() -> None:
        s = get_settings().services
        infos = up(s)
        emit(
            {name: {"url": i.url, "pid": i.pid, "log": i.log_file} for name, i in infos.items()},
            as_json=False,
        )
        env = client_env(s)
        exports = " ".join(f"{k}={env[k]}" for k in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"))
        typer.echo(f"export {exports}")

    run_guarded(body)


@app.command("down")
def down_command() -> None:
    """Stop the servers started by ``up``, the nightly deployment and the demo's service."""
    from vsearch.cli_support import get_settings, run_guarded

    def body() -> None:
        from vsearch.scheduling import deploy_down
        from vsearch.serving.process import stop_detached

        settings = get_settings()
        stopped = ["nightly deployment"] if deploy_down(settings) else []
        if stop_detached(_state_dir(settings.services)):
            stopped.append("search service")
        stopped += down(settings.services)
        typer.echo(f"stopped: {stopped or 'nothing'}")

    run_guarded(body)


@app.command("status")
def status_command(json_out: bool = typer.Option(False, "--json")) -> None:
    """Show each server's URL, pid and health."""
    from vsearch.cli_support import emit, get_settings, run_guarded

    run_guarded(lambda: emit(status(get_settings().services), as_json=json_out))
