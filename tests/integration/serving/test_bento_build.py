"""``bentoml build`` turns bentofile.yaml into a Bento (the artefact; no container engine needed)
that carries the service code (importable from the Bento's own source folder), its web page,
params.yaml and the batchable search API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vsearch.local.env import TELEMETRY_OFF

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
# Where `import vsearch.serving.service` would load from (without running the module).
FIND_SERVICE = "import importlib.util as u; print(u.find_spec('vsearch.serving.service').origin)"


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
    # The package sits at the Bento's source root (where BentoML imports the service from),
    # not under src/src: requirements.lock does not install vsearch, so nothing else would.
    src = bento / "src"
    for rel in ("serving/service.py", "serving/web.py", "serving/static/index.html"):
        assert (src / "vsearch" / rel).is_file(), rel
    assert not (src / "src").exists()
    assert (src / "params.yaml").is_file()
    # Importable from that layout alone: no site-packages (-S), so not the editable install.
    found = subprocess.run(
        [sys.executable, "-S", "-c", FIND_SERVICE],
        cwd=src,
        env={"PATH": env["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr[-2000:]
    assert Path(found.stdout.strip()).resolve() == (src / "vsearch/serving/service.py").resolve()
    routes = {
        r["route"]: r
        for r in yaml.safe_load((bento / "bento.yaml").read_text())["schema"]["routes"]
    }
    assert routes["/search_batch"]["batchable"] is True and "/info" in routes
