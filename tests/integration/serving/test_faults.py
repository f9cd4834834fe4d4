"""Faults injected into the running service: ``kill -9`` in the middle of admin upserts loses
no acknowledged write, and a release with a flipped byte is refused by its checksums while the
old release keeps serving. Real ``bentoml serve`` processes, real HTTP, no mocks.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from vsearch.index.manifest import Manifest
from vsearch.index.release import current_version, set_current
from vsearch.local.processes import Started
from vsearch.local.service import start_background, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "fault-test-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 60
WRITERS = 4  # threads upserting at once: some writes are in flight when the kill comes
KILL_AFTER_ACKS = 12


def _start(served_project, port: int, log_name: str) -> Started:
    root = served_project.root
    return start_background(
        "127.0.0.1",
        port,
        served_project.params,
        root,
        root / log_name,
        timeout_s=120,
        env={"VSEARCH_ADMIN_TOKEN": TOKEN},
    )


@pytest.fixture
def service(served_project, port_factory) -> Iterator[tuple[str, Started]]:
    port = port_factory()
    proc = _start(served_project, port, "faults-service.log")
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.alive():
            stop(proc)


def _upsert(url: str, served_project, item_id: str, row: int) -> httpx.Response:
    item = served_project.catalog.iloc[row]
    fields = {
        "item_id": item_id,
        "category": str(item["category"]),
        "seller_id": "fault-seller",
        "title": f"written before a crash {item_id}",
        "price": "12.5",
    }
    photo = (served_project.drop / item["image"]).read_bytes()
    files = {"image": ("p.jpg", photo, "image/jpeg")}
    return httpx.post(f"{url}/admin/items", data=fields, files=files, headers=ADMIN, timeout=30)


def test_kill9_during_admin_upserts_keeps_every_acknowledged_write(service, served_project) -> None:
    url, proc = service
    acked: list[str] = []
    enough = threading.Event()
    lock = threading.Lock()

    def writer(w: int) -> None:
        for n in range(1000):
            item_id = f"k9-{w}-{n}"
            try:
                r = _upsert(url, served_project, item_id, (w * 7 + n) % 20)
            except httpx.HTTPError:
                return  # the server died under this request: never acknowledged
            if r.status_code != 200:
                return
            with lock:
                acked.append(item_id)
                if len(acked) >= KILL_AFTER_ACKS:
                    enough.set()

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    for t in threads:
        t.start()
    assert enough.wait(TIMEOUT * 3), "the upserts did not get through"
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "bentoml serve runs its service in worker processes"
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the service (bentoml serve), mid-write
    assert proc.proc is not None and proc.proc.wait(TIMEOUT) == -signal.SIGKILL
    # Its workers live in their own sessions; they must not outlive it (port, files).
    _, alive = psutil.wait_procs(workers, timeout=TIMEOUT)
    assert not alive, f"workers outlived the killed service: {alive}"
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()
    with lock:
        written = list(acked)
    assert len(written) >= KILL_AFTER_ACKS

    port = int(url.rsplit(":", 1)[1])  # the same port: nothing holds it any more
    again = _start(served_project, port, "faults-restart.log")  # same project, fresh process
    try:
        url2 = url
        for item_id in written:  # a delete answers 404 for an id that is not live
            r = httpx.delete(f"{url2}/admin/items/{item_id}", headers=ADMIN, timeout=TIMEOUT)
            assert r.status_code == 200, (item_id, r.text)
        r = _upsert(url2, served_project, "after-restart", 3)  # and it takes writes again
        assert r.status_code == 200, r.text
    finally:
        stop(again)


def _flip_a_byte(release: Path) -> str:
    """Flip one byte in the middle of the release's largest checksummed file."""
    manifest = Manifest.read(release)
    rel = max(manifest.files, key=lambda name: manifest.files[name]["bytes"])
    path = release / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return rel


def test_flipped_byte_is_refused_by_checksum_and_the_old_release_keeps_serving(
    service, served_project
) -> None:
    url, _ = service
    indexes = served_project.indexes
    before = current_version(indexes)
    photo = (served_project.drop / served_project.catalog.iloc[0]["image"]).read_bytes()
    files = {"image": ("q.jpg", photo, "image/jpeg")}
    assert httpx.post(f"{url}/search", files=files, timeout=TIMEOUT).json()["release"] == before

    damaged = "v0002"  # built by the served model, not active
    _flip_a_byte(indexes / damaged)
    set_current(indexes, damaged)
    try:
        r = httpx.post(f"{url}/admin/reload", headers=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 409, r.text
        body = r.json()
        assert "failed verification" in body["error"] and damaged in body["error"]
        assert body["serving"] == before
        r = httpx.post(f"{url}/search", files=files, timeout=TIMEOUT)
        assert r.status_code == 200 and r.json()["release"] == before
        assert httpx.get(f"{url}/readyz", timeout=TIMEOUT).status_code == 200
        exported = httpx.get(f"{url}/metrics", timeout=TIMEOUT).text  # what alerts read
        assert 'vsearch_reloads_total{result="refused"} 1.0' in exported
        assert "vsearch_release_created_timestamp_seconds" in exported
    finally:
        set_current(indexes, before)
