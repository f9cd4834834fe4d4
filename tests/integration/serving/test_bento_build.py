"""``bentoml build`` turns bentofile.yaml into a Bento (the artefact; no container engine needed)
that carries the service code, its web page and the batchable search API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vsearch.services import TELEMETRY_OFF

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def test_bentoml_build_makes_a_bento(tmp_path: Path) -> None:
    home = tmp_path / "bentoml"
    env = {**os.environ, **TELEMETRY_OFF, "BENTOML_HOME": str(home)}
    for var in ("VSEARCH_PARAMS", "VSEARCH_ROOT"):
        env.pop(var, None)
    bentoml = Path(sys.executable).with_name("bentoml")
    out = subprocess.run(
        [str(bentoml), "build", "--output", "tag"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = home / "bentos" / name / version
    src = bento / "src" / "src" / "vsearch"
    for rel in ("serving/service.py", "serving/web.py", "serving/static/index.html"):
        assert (src / rel).is_file(), rel
    assert (bento / "src" / "params.yaml").is_file()
    routes = {
        r["route"]: r
        for r in yaml.safe_load((bento / "bento.yaml").read_text())["schema"]["routes"]
    }
    assert routes["/search_batch"]["batchable"] is True and "/info" in routes
