"""``kill -9`` tests: a killed build leaves the old release serving; acknowledged writes survive.

Each test runs the real code in a child process and kills it with SIGKILL at a known point
(the child prints a marker and waits), so nothing in the child can clean up after itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vsearch.index.builder import build_release
from vsearch.index.engine import Engine
from vsearch.index.release import STAGING_PREFIX, current_version
from vsearch.index.synthetic import SyntheticSpec, make_world
from vsearch.settings import IndexSettings

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[3] / "src"
SETTINGS = dict(flat_max=300, ivf_list_size=20, ivf_quantizer_flat_max=8, rerank_depth=50)


def _child(code: str, marker: str, timeout: float = 120) -> tuple[subprocess.Popen, list[str]]:
    """Start ``code`` in a fresh interpreter; return once it printed ``marker``."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    for line in proc.stdout:  # blocks until the child reaches the marker
        lines.append(line.strip())
        if line.startswith(marker):
            return proc, lines
    proc.kill()
    raise AssertionError(f"child exited ({proc.wait(timeout)}) before printing {marker!r}")


def _kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


@pytest.fixture
def release(tmp_path: Path):
    world = make_world(SyntheticSpec(items=1500, categories=3, seed=5, encoder_sample=1500))
    root = tmp_path / "indexes"
    build_release(world.catalog, IndexSettings(**SETTINGS), root)
    return world, root


BUILD_CHILD = """
    import sys, time
    from vsearch.index.builder import build_release, serial_map
    from vsearch.index.synthetic import SyntheticSpec, make_world
    from vsearch.settings import IndexSettings

    world = make_world(SyntheticSpec(items=1200, categories=3, seed=9, encoder_sample=1200))
    phase = sys.argv[-1] if len(sys.argv) > 1 else "{phase}"

    def slow_map(fn, jobs):
        out = [fn(jobs[0])]
        if phase == "partitions":
            print("KILL-ME", flush=True); time.sleep(120)
        return out + [fn(j) for j in jobs[1:]]

    def slow_publish(staging, version):
        print("KILL-ME", flush=True); time.sleep(120)

    build_release(world.catalog, IndexSettings(**{settings}), "{root}", map_fn=slow_map,
                  publish_hook=slow_publish if phase == "publish" else None)
    print("FINISHED", flush=True)
"""


@pytest.mark.parametrize("phase", ["partitions", "publish"])
def test_kill9_mid_build_leaves_old_release_serving(release, phase: str) -> None:
    world, root = release
    code = BUILD_CHILD.format(phase=phase, settings=SETTINGS, root=root)
    proc, _ = _child(code, "KILL-ME")
    staging = [p for p in root.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(staging) == 1  # the child was mid-build
    _kill9(proc)

    assert current_version(root) == "v0001"
    q = world.queries(20, seed=1)
    with Engine.open_current(root, verify=True) as e:  # checksums of the old release still hold
        res = e.search(q.codes, q.vectors, [[c] for c in q.category], k=5)
        assert e.version == "v0001" and len(e) == 1500
        assert set(res.item_ids.ravel()) <= set(world.catalog.item_ids)

    # The next build removes the dead build's staging folder and publishes normally.
    build_release(world.catalog, IndexSettings(**SETTINGS), root)
    assert current_version(root) == "v0002"
    assert not [p for p in root.iterdir() if p.name.startswith(STAGING_PREFIX)]


WRITER_CHILD = """
    import numpy as np
    from vsearch.index.embeddings import EmbeddingSet
    from vsearch.index.engine import Engine
    from vsearch.index.synthetic import SyntheticSpec, make_world

    world = make_world(SyntheticSpec(items=1500, categories=3, seed=5, encoder_sample=1500))
    q = world.queries(400, seed=77)
    engine = Engine.open_current("{root}")
    print("OPEN", flush=True)
    for i in range(400):
        one = EmbeddingSet(np.asarray([f"w{{i}}"], dtype=object), q.category[i:i + 1],
                           q.codes[i:i + 1], q.vectors[i:i + 1], world.catalog.model)
        engine.upsert(one)  # returns after fsync
        if i % 7 == 3:
            engine.delete([world.catalog.item_ids[i]])
        print(f"ACK {{i}}", flush=True)
"""


def test_kill9_never_loses_an_acknowledged_write(release) -> None:
    world, root = release
    proc, lines = _child(WRITER_CHILD.format(root=root), "ACK 60")
    _kill9(proc)  # probably mid-write: the record being appended was never acknowledged
    acked = [int(x.split()[1]) for x in lines if x.startswith("ACK")]
    assert acked[-1] >= 60

    q = world.queries(400, seed=77)
    with Engine.open_current(root) as e:  # replays the log, dropping a torn tail
        ids = [f"w{i}" for i in acked]
        assert (e.lookup(ids) >= 0).all()
        deleted = [world.catalog.item_ids[i] for i in acked if i % 7 == 3]
        assert (e.lookup(deleted) == -1).all()
        res = e.search(q.codes[acked], q.vectors[acked], [[c] for c in q.category[acked]], k=5)
        assert all(f"w{i}" in row for i, row in zip(acked, res.item_ids.tolist(), strict=True))
        # the log accepts writes again after the crash
        e.delete(["w0"])
    with Engine.open_current(root) as e:
        assert e.lookup(["w0"])[0] == -1 and np.all(e.lookup(ids[1:]) >= 0)
