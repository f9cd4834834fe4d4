"""Faults around the nightly run, as an operator meets them through ``vsearch pipeline`` (a real
process, a real Prefect server, real DVC):

* the Prefect server is down: the command says so, naming the URL and ``vsearch services up``,
  exits non-zero and touches nothing; once the server answers, the next run works;
* two nights at once: while one process holds the project's nightly lock (the lock the nightly
  flow takes), a second night refuses (exit 2) and writes nothing; the incoming drop waits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.foreign import write_snapshot
from vsearch.local.env import TELEMETRY_OFF
from vsearch.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-c", "from vsearch.cli import app; app()"]
TIMEOUT_S = 600
HOLDER = """
import sys
from pathlib import Path
from vsearch.local.deployment import nightly_lock
lock = nightly_lock(Path(sys.argv[1]))
print("HELD" if lock else "BUSY", flush=True)
sys.stdin.read()  # hold until the test closes stdin
"""


def _params(root: Path, params_path: Path, inbox: Path, prefect: str, mlflow: str) -> Path:
    """The scratch project's params: external servers (nothing is started), its own inbox."""
    s = load_settings(params_path)
    s.ingest.incoming = str(inbox)
    s.validation.data_docs = False
    raw = s.model_dump(mode="json")
    raw["services"]["prefect"]["api_url"] = prefect
    raw["services"]["mlflow"]["tracking_uri"] = mlflow
    raw["services"]["state_dir"] = str(root / ".services")
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env() -> dict[str, str]:
    env = {**os.environ, **TELEMETRY_OFF, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)  # the params name the servers
    return env


def _pipeline(root: Path, params: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--params", str(params), "pipeline", "--json"],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _night(out: subprocess.CompletedProcess[str]) -> dict:
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_prefect_down_is_said_and_the_next_run_works(
    prefect_server: str,
    mlflow_server: str,
    scratch_repo: Path,
    tmp_path: Path,
    params_path: Path,
    port_factory,
) -> None:
    inbox = tmp_path / "incoming"
    inbox.mkdir()
    dead = f"http://127.0.0.1:{port_factory()}/api"  # nothing listens there
    params = _params(scratch_repo, params_path, inbox, dead, mlflow_server)
    out = _pipeline(scratch_repo, params)
    assert out.returncode == 1, out.stderr[-3000:]
    assert dead in out.stderr and "vsearch services up" in out.stderr
    assert "Traceback" not in out.stderr and "unexpected error" not in out.stderr
    assert not (scratch_repo / "data").exists()  # nothing ran

    params = _params(scratch_repo, params_path, inbox, prefect_server, mlflow_server)
    night = _night(_pipeline(scratch_repo, params))  # the server answers: the night runs
    assert night["nothing_to_do"] is True and night["flow_run_id"]


def test_two_nights_at_once_one_refuses_and_writes_nothing(
    prefect_server: str, mlflow_server: str, scratch_repo: Path, tmp_path: Path, params_path: Path
) -> None:
    inbox = tmp_path / "incoming"
    drop = inbox / "a-snap"
    write_snapshot(drop, drop_id="a-snap", start=datetime.now(UTC))
    params = _params(scratch_repo, params_path, inbox, prefect_server, mlflow_server)
    before = sorted(p.name for p in scratch_repo.iterdir())

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(scratch_repo)],
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        out = _pipeline(scratch_repo, params)  # a second night while the first holds the lock
        assert out.returncode == 2, out.stderr[-3000:]
        assert "holds the project lock" in out.stderr
        after = sorted(p.name for p in scratch_repo.iterdir())
        assert set(after) - set(before) <= {".vsearch-nightly.lock", ".services"}, after
        assert not (scratch_repo / "data").exists()  # no ingest, no ledger, no window
        assert drop.is_dir() and not (inbox / "ingested").exists()  # the drop waits
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)

    # The first night is over (lock released): a third process takes the lock again.
    again = subprocess.run(
        [sys.executable, "-c", HOLDER, str(scratch_repo)],
        env=_env(),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.stdout.strip() == "HELD"
