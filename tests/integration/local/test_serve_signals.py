"""`vsearch serve` under a process manager: SIGTERM (or SIGINT) to the command stops its BentoML
server and workers, and the command exits only once they are gone, so the port is free."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

pytestmark = pytest.mark.integration

GRACE_S = 10.0  # serving.stop_grace_s of this test's project
START_S = 120.0  # a guard against hanging, not a timing assertion


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_and_frees_the_port(
    sig: int, tmp_path: Path, params_path: Path, port_factory
) -> None:
    root = tmp_path / "project"
    (root / "indexes").mkdir(parents=True)  # no release: the server starts, not ready
    raw = yaml.safe_load(params_path.read_text())
    raw["serving"]["stop_grace_s"] = GRACE_S
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    port = port_factory()
    cmd = [sys.executable, "-c", "from vsearch.cli import app; app()", "serve", "--port", str(port)]
    with (tmp_path / "serve.log").open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "service did not come up"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "vsearch serve runs the BentoML server as a child"
        proc.send_signal(sig)
        code = proc.wait(timeout=GRACE_S + 15)  # it returns only once the server is gone
        assert code == 0
        assert not [c.pid for c in children if c.is_running() and c.status() != "zombie"]
        assert _port_free(port)
    finally:  # a failing run must not leave its server behind
        for p in [proc, *children]:
            try:
                if p.poll() is None if isinstance(p, subprocess.Popen) else p.is_running():
                    p.kill()
            except psutil.NoSuchProcess:
                pass
