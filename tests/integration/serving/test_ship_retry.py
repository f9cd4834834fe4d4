"""The promotion's `ship` subflow against real Prefect, MLflow and a real service: a reload the
service refuses for a moment (its admin rate limit: 429) is retried on its own, and the alias
move before it runs exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import mlflow
import pytest

from tests.kit import service_with
from vsearch.registry.promotion import Candidate
from vsearch.registry.registry import ModelRegistry

pytestmark = pytest.mark.integration

TOKEN = "ship-test-token"
REFILL_S = 3.0  # the service's admin bucket: 1 call, refilled after this long
LATENCY = {"p95_ms": 12.5, "requests": 6}


@pytest.fixture(scope="module")
def service(served_project, port_factory) -> Iterator[int]:
    port = port_factory()
    limits = {"admin_rate_per_s": 1.0 / REFILL_S, "admin_rate_burst": 1}
    with service_with(served_project.root, served_project.params, port, "ship", TOKEN, **limits):
        yield port


async def _task_runs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def test_a_refused_reload_is_retried_without_moving_the_alias_again(
    service: int,
    served_project,
    prefect_server: str,
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.promotion import ship

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("VSEARCH_ADMIN_TOKEN", TOKEN)
    s = served_project.settings.model_copy(deep=True)
    s.registry.model_name = f"test-ship-{uuid.uuid4().hex[:8]}"
    s.serving.host, s.serving.port = "127.0.0.1", service
    s.promotion.build_bento = False  # `bentoml build` has its own test
    s.promotion.io_retries, s.promotion.io_retry_delay_s = 2, REFILL_S + 1.0
    client = mlflow.MlflowClient(mlflow_server, registry_uri=mlflow_server)
    run = client.create_run(client.create_experiment(f"{s.registry.model_name}-exp"))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(s.registry.model_name)
    mv = client.create_model_version(
        s.registry.model_name, f"runs:/{run.info.run_id}/model", run.info.run_id
    )
    cand = Candidate(served_project.root / "run", served_project.fingerprints["a"], mv.version, {})
    root = served_project.root

    admin = {"Authorization": f"Bearer {TOKEN}"}
    url = f"http://127.0.0.1:{service}"
    assert httpx.get(f"{url}/info", headers=admin, timeout=30).status_code == 200  # bucket empty
    state = ship(s, root, cand, "v0002", LATENCY, return_state=True)
    out = state.result()

    assert out["reload"]["status"] == "reloaded" and out["reload"]["serving"]["release"] == "v0002"
    assert out["champion"] == mv.version and out["previous_release"] == "v0001"
    assert (served_project.indexes / "CURRENT").read_text().strip() == "v0002"
    reg = ModelRegistry.from_settings(s)
    assert reg.aliases()[s.registry.champion_alias] == str(mv.version)
    runs = asyncio.run(_task_runs(state.state_details.flow_run_id))
    by_task = {r.name.rsplit("-", 1)[0]: r for r in runs}
    assert sorted(by_task) == ["activate", "service-reload"]
    assert len(runs) == 2  # one task run each: the alias move was not repeated
    assert by_task["activate"].run_count == 1
    assert by_task["service-reload"].run_count == 2  # refused (429), then reloaded
