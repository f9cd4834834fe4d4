"""Shared fixtures: real local servers (once per session), tiny demo worlds, scratch repos.

Why session-scoped servers: starting MLflow (~10 s) and Prefect (~17 s) is the dominant cost of
the integration suite, so they start once, in parallel, on free ports under a temporary state
folder, and every integration test talks to the same real processes. Nothing here mocks our
own stack.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vsearch.local.env import TELEMETRY_OFF
from vsearch.settings import ServicesSettings, Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS = REPO_ROOT / "params.yaml"

for _k, _v in TELEMETRY_OFF.items():
    os.environ.setdefault(_k, _v)


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def port_factory() -> Callable[[], int]:
    """``port_factory()`` gives a free localhost port for a server a test starts."""
    return free_port


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The project's real params.yaml, loaded once."""
    return load_settings(PARAMS)


@pytest.fixture(scope="session")
def services_settings(tmp_path_factory: pytest.TempPathFactory) -> ServicesSettings:
    s = ServicesSettings(state_dir=tmp_path_factory.mktemp("services"))
    s.mlflow.port = free_port()
    s.prefect.port = free_port()
    return s


@pytest.fixture(scope="session")
def live_services(services_settings: ServicesSettings) -> Iterator[ServicesSettings]:
    """Real MLflow + Prefect servers for the whole session; client env exported."""
    from vsearch.local import servers
    from vsearch.local.env import apply_client_env

    servers.up(services_settings)
    saved = dict(os.environ)
    apply_client_env(services_settings)
    try:
        yield services_settings
    finally:
        servers.down(services_settings)
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def prefect_server(live_services: ServicesSettings) -> Iterator[str]:
    """The API URL of a real local Prefect server, active as Prefect's settings for the session.

    Prefect reads its settings when it is imported, so besides the environment the URL is also
    put into a ``temporary_settings`` context.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from vsearch.local.env import prefect_api_url

    url = prefect_api_url(live_services)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


@pytest.fixture(scope="session")
def mlflow_server(live_services: ServicesSettings) -> str:
    """Tracking URI of a real local MLflow server (SQLite backend, local artifacts)."""
    from vsearch.local.env import mlflow_tracking_uri

    return mlflow_tracking_uri(live_services)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> tuple[Path, Path]:
    """A small, valid demo-world drop and its truth, generated once per session (read-only)."""
    from vsearch.world import generate_world

    base = tmp_path_factory.mktemp("tiny_world")
    drop, truth = base / "drop", base / "truth"
    generate_world(settings.world, drop, truth, seed=3, items=240, queries=120)
    return drop, truth


def _copy_drop(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=os.link)
    for f in dst.iterdir():
        if f.is_file():  # tables and manifest: real copies, so edits never touch the source
            data = f.read_bytes()
            f.unlink()
            f.write_bytes(data)
    return dst


@pytest.fixture(scope="session")
def copy_drop() -> Callable[[Path, Path], Path]:
    """``copy_drop(src, dst)``: a private copy of a drop that a test may corrupt.

    Images are hard links to save time and disk: to corrupt one, replace the file
    (``unlink`` then write), never write into it in place.
    """
    return _copy_drop


@pytest.fixture(scope="session")
def params_path() -> Path:
    """The project's params.yaml."""
    return PARAMS


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    """An empty git + DVC repo with a local remote, like a fresh clone of a data project."""
    from vsearch.data import dvc

    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc.ensure_repo(root, "local", tmp_path / "remote")
    return root
