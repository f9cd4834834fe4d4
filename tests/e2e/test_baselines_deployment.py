"""The deployments' process on a real Prefect server: it registers the nightly and the weekly
baselines deployments (crons from params) and runs a baselines run asked for in the background
(what `vsearch demo` does once the service is up): the figures land in the project. The drop
has no ground truth, as a shop's: the oracle says why it was skipped, the others measure."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from uuid import UUID

import pytest

from tests.kit import REPO_ROOT, scratch_project, tiny_project
from vsearch.contracts import NO_TRUTH_FILE
from vsearch.data.ingest import ingest_drop
from vsearch.settings import ServicesSettings, load_settings
from vsearch.trained import read_skipped

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUN_TIMEOUT_S = 600  # a tiny baselines run takes about a minute; the machine may be busy
POLL_S = 2.0


def _final_state(run_id: str, timeout_s: float):
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(UUID(run_id)).state
            if state is not None and state.is_final():
                return state
            if time.monotonic() > deadline:
                return state
            time.sleep(POLL_S)


def test_deployments_register_and_a_background_baselines_run_measures_them(
    prefect_server: str,
    mlflow_server: str,
    live_services: ServicesSettings,
    tiny_world: tuple[Path, Path],
    scratch_repo: Path,
) -> None:
    from vsearch.local.deployment import deploy_down, deploy_up, start_baselines_run

    s = tiny_project(load_settings(REPO_ROOT / "params.yaml"), live_services)
    s.schedule.baselines_cron = "0 5 * * 6"
    scratch_project(scratch_repo, s)
    shutil.copytree(
        REPO_ROOT / "flows", scratch_repo / "flows", ignore=shutil.ignore_patterns("__pycache__")
    )
    drop, _ = tiny_world
    res = ingest_drop(drop, s, scratch_repo, truth=None)  # a shop's drop: no ground truth
    truth = scratch_repo / s.ingest.truth_dir / res.drop_id
    assert [p.name for p in truth.iterdir()] == [NO_TRUTH_FILE]

    info = deploy_up(s, scratch_repo, Path("params.yaml"), timeout_s=120)
    try:
        assert info["name"] == "nightly/vsearch-nightly" and info["cron"] == [s.schedule.cron]
        assert info["baselines"]["name"] == "baselines/vsearch-baselines"
        assert info["baselines"]["cron"] == ["0 5 * * 6"]
        run_id = start_baselines_run()  # returns at once: the process runs it
        assert not (scratch_repo / "reports" / "baselines" / "metrics.json").exists()
        state = _final_state(run_id, RUN_TIMEOUT_S)
        log = Path(info["log"]).read_text()[-3000:]
        assert state is not None and state.is_completed(), f"{state}\n{log}"
    finally:
        deploy_down(s)
    figures = json.loads((scratch_repo / "reports" / "baselines" / "metrics.json").read_text())
    assert set(figures["baselines"]) == {"oracle", "category_only", "colour_histogram", "untrained"}
    # without truth the oracle (true product ids) says why it was skipped; the others measure
    assert "no ground truth" in str(read_skipped(scratch_repo / "runs" / "oracle"))
    assert "ground truth" in figures["baselines"]["oracle"]["skipped"]
    others = [m for name, m in figures["baselines"].items() if name != "oracle"]
    assert all("skipped" not in m and "click_recall@10" in m for m in others)
    assert not (scratch_repo / "runs" / "train").exists()  # the nightly's model was never needed
