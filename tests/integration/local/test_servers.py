"""The embedded servers are real processes that answer, and `up` is idempotent."""

from __future__ import annotations

import httpx
import pytest

from vsearch.local import env, servers
from vsearch.settings import ServicesSettings

pytestmark = pytest.mark.integration


def test_both_servers_healthy(live_services: ServicesSettings) -> None:
    st = servers.status(live_services)
    assert st["mlflow"]["healthy"] and st["prefect"]["healthy"]
    assert st["mlflow"]["pid"] and st["prefect"]["pid"]


def test_mlflow_runs_without_its_job_runner(live_services: ServicesSettings) -> None:
    """MLflow 3 starts a pool of job workers by default; our embedded server never needs them."""
    import psutil

    pid = servers.status(live_services)["mlflow"]["pid"]
    tree = psutil.Process(pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in tree]
    assert commands  # the uvicorn worker
    assert not [c for c in commands if "huey" in c or "_job_runner" in c], commands


def test_up_reuses_running_servers(live_services: ServicesSettings) -> None:
    before = servers.read_state(live_services)
    again = servers.up(live_services)
    assert {k: v.pid for k, v in again.items()} == {k: v.pid for k, v in before.items()}


def test_mlflow_uses_sqlite_and_absolute_uris(live_services: ServicesSettings) -> None:
    backend, artifacts = env.mlflow_uris(live_services)
    assert backend.startswith("sqlite:////") and artifacts.startswith("file:///")
    r = httpx.get(
        f"{env.mlflow_tracking_uri(live_services)}/api/2.0/mlflow/experiments/search",
        params={"max_results": 5},
        timeout=10,
    )
    assert r.status_code == 200


def test_port_taken_by_another_server_is_refused(live_services: ServicesSettings, tmp_path) -> None:
    other = ServicesSettings(state_dir=tmp_path)
    other.mlflow.port = live_services.mlflow.port  # already served by the session's MLflow
    other.prefect.api_url = env.prefect_api_url(live_services)  # external: not started
    with pytest.raises(servers.ServiceError, match="already serves"):
        servers.up(other)


def test_client_env_points_at_servers(live_services: ServicesSettings) -> None:
    client = env.client_env(live_services)
    assert client["PREFECT_API_URL"].endswith(f":{live_services.prefect.port}/api")
    assert client["MLFLOW_TRACKING_URI"].endswith(f":{live_services.mlflow.port}")
    assert client["DO_NOT_TRACK"] == "1"
