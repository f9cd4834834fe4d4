"""Embedded services: a real MLflow tracking server and a real Prefect server as local processes.

Why: vsearch's users live in the MLflow and Prefect UIs, and our tests must exercise the real
servers, not mocks or Prefect's ephemeral mode. One module starts both (in parallel: MLflow is
healthy after ~10 s, Prefect after ~17 s), waits until their health endpoints answer, records
pids (with their start times) and URLs under ``services.state_dir`` and stops them again.
``make demo``, the CLI (``vsearch services up|down|status``, :mod:`vsearch.local.cli`) and the
integration tests all use it.

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
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from vsearch.errors import BadInput, Unavailable
from vsearch.fsio import atomic_write_json
from vsearch.local.env import (
    TELEMETRY_OFF,
    mlflow_uris,
    prefect_api_url,
    prefect_env,
    state_dir,
)
from vsearch.local.processes import Started, StartFailed, spawn, stop, wait_until
from vsearch.settings import ServicesSettings

log = logging.getLogger(__name__)

STATE_FILE = "services.json"
_POLL_S = 0.5
_HEALTH_TIMEOUT_S = 2.0
_PORT_PROBE_S = 0.5


class ServiceError(StartFailed, Unavailable):
    """A server did not become healthy (the message points at its log file), or an external
    one does not answer."""


@dataclass
class ServiceInfo:
    """One running (or external) server.

    Attributes:
        create_time: the server process's start time (tells it apart from a reused pid).
        boot_time: the boot time read with it (:mod:`vsearch.local.processes`).
    """

    name: str
    url: str
    health_url: str
    pid: int | None
    log_file: str | None
    external: bool = False
    create_time: float | None = None
    boot_time: float | None = None

    def process(self) -> Started | None:
        """The recorded process, if it still runs (same pid and start time)."""
        if not self.pid or self.create_time is None:
            return None  # no start time: the pid cannot be told apart from a reused one
        found = Started(self.pid, self.create_time, boot_time=self.boot_time)
        return found if found.alive() else None


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


MLFLOW_JOBS_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def _specs(settings: ServicesSettings) -> list[ServiceSpec]:
    state = state_dir(settings)
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
                # MLflow 3's job runner (a pool of huey workers for GenAI jobs we never
                # submit) would cost several processes and ~1 GB on a 2-core machine
                env={**base_env, MLFLOW_JOBS_ENV: "false"},
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


def _answers(info: ServiceInfo) -> bool:
    """An external server's health endpoint answers (``file:``/``sqlite:`` stores need none)."""
    return not info.url.startswith(("http://", "https://")) or _healthy(info.health_url)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=_HEALTH_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return False


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(_PORT_PROBE_S)
        return s.connect_ex((host, port)) == 0


def read_state(settings: ServicesSettings) -> dict[str, ServiceInfo]:
    """What ``up`` recorded (empty if never started)."""
    path = state_dir(settings) / STATE_FILE
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    return {name: ServiceInfo(**info) for name, info in raw.items()}


def _write_state(settings: ServicesSettings, infos: Mapping[str, ServiceInfo]) -> None:
    path = state_dir(settings) / STATE_FILE
    atomic_write_json(path, {k: asdict(v) for k, v in infos.items()}, sort_keys=False)


def _start_one(spec: ServiceSpec, timeout_s: float, known: ServiceInfo | None) -> ServiceInfo:
    if known and known.process() is not None and _healthy(spec.health_url):
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
    started = spawn(spec.argv, spec.log_file, spec.env)
    log.info("starting %s (pid %d), log %s", spec.name, started.pid, spec.log_file)
    try:
        wait_until(
            started,
            lambda: True if _healthy(spec.health_url) else None,
            name=spec.name,
            log_file=spec.log_file,
            timeout_s=timeout_s,
            poll_s=_POLL_S,
        )
    except StartFailed as exc:
        raise ServiceError(str(exc)) from None
    log.info("%s healthy at %s", spec.name, spec.url)
    return ServiceInfo(
        spec.name,
        spec.url,
        spec.health_url,
        started.pid,
        str(spec.log_file),
        create_time=started.create_time,
        boot_time=started.boot_time,
    )


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
    for name, key in (("mlflow", "tracking_uri"), ("prefect", "api_url")):
        info = infos.get(name)
        if info is not None and info.external and not _answers(info):
            errors.append(
                f"{name} server {info.url} does not answer ({info.health_url}): start it, or "
                f"clear services.{name}.{key} in params.yaml to use the local one "
                "(`vsearch services up`)"
            )
    _write_state(settings, {k: v for k, v in infos.items() if not v.external})
    if errors:
        down(settings)
        raise ServiceError("; ".join(errors))
    return infos


def down(settings: ServicesSettings) -> list[str]:
    """Stop the servers ``up`` started (external ones are left alone). Returns names stopped."""
    stopped = []
    for name, info in read_state(settings).items():
        found = info.process()
        if found is not None and stop(found):
            stopped.append(name)
    state = state_dir(settings) / STATE_FILE
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
