"""The embedded servers are real processes that answer, and `up` is idempotent."""

from __future__ import annotations

import httpx
import pytest

from vsearch import services
from vsearch.settings import ServicesSettings

pytestmark = pytest.mark.integration


def test_both_servers_healthy(live_services: ServicesSettings) -> None:
    st = services.status(live_services)
    assert st["mlflow"]["healthy"] and st["prefect"]["healthy"]
    assert st["mlflow"]["pid"] and st["prefect"]["pid"]


def test_up_reuses_running_servers(live_services: ServicesSettings) -> None:
    before = services.read_state(live_services)
    again = services.up(live_services)
    assert {k: v.pid for k, v in again.items()} == {k: v.pid for k, v in before.items()}


def test_mlflow_uses_sqlite_and_absolute_uris(live_services: ServicesSettings) -> None:
    backend, artifacts = services.mlflow_uris(live_services)
    assert backend.startswith("sqlite:////") and artifacts.startswith("file:///")
    r = httpx.get(
        f"{services.mlflow_tracking_uri(live_services)}/api/2.0/mlflow/experiments/search",
        params={"max_results": 5},
        timeout=10,
    )
    assert r.status_code == 200


def test_port_taken_by_another_server_is_refused(live_services: ServicesSettings, tmp_path) -> None:
    other = ServicesSettings(state_dir=tmp_path)
    other.mlflow.port = live_services.mlflow.port  # already served by the session's MLflow
    other.prefect.api_url = services.prefect_api_url(live_services)  # external: not started
    with pytest.raises(services.ServiceError, match="already serves"):
        services.up(other)


def test_client_env_points_at_servers(live_services: ServicesSettings) -> None:
    env = services.client_env(live_services)
    assert env["PREFECT_API_URL"].endswith(f":{live_services.prefect.port}/api")
    assert env["MLFLOW_TRACKING_URI"].endswith(f":{live_services.mlflow.port}")
    assert env["DO_NOT_TRACK"] == "1"
