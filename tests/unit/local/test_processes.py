"""Spawn, wait, record, stop: a recorded pid is signalled only while it is still that process."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from vsearch.local.processes import (
    Started,
    StartFailed,
    pid_alive,
    read_record,
    recorded,
    spawn,
    stop,
    stop_recorded,
    wait_until,
    write_record,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def sleeper(tmp_path: Path):
    started = spawn(SLEEPER, tmp_path / "sleeper.log", {})
    yield started
    stop(started, grace_s=5)


def test_spawn_records_pid_and_start_time(sleeper: Started, tmp_path: Path) -> None:
    assert sleeper.create_time == psutil.Process(sleeper.pid).create_time()
    assert pid_alive(sleeper.pid, sleeper.create_time)
    write_record(tmp_path / "state.json", {**sleeper.record(), "url": "x"})
    found = recorded(read_record(tmp_path / "state.json"))
    assert found is not None and found.pid == sleeper.pid


def test_wrong_start_time_is_never_signalled(sleeper: Started, tmp_path: Path) -> None:
    """A live pid whose start time differs from the recorded one is another process."""
    state = tmp_path / "state.json"
    write_record(state, {"pid": sleeper.pid, "create_time": sleeper.create_time - 1000.0})
    assert recorded(read_record(state)) is None
    assert not pid_alive(sleeper.pid, sleeper.create_time - 1000.0)
    assert stop_recorded(state, grace_s=1) is False
    assert not state.exists()
    assert sleeper.alive() and psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE


def test_stop_recorded_stops_the_group(sleeper: Started, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    write_record(state, sleeper.record())
    assert stop_recorded(state, grace_s=5) is True
    assert not psutil.pid_exists(sleeper.pid) or not pid_alive(sleeper.pid)
    assert not state.exists()


def test_wait_until_reports_an_early_exit(tmp_path: Path) -> None:
    started = spawn([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "x.log", {})
    with pytest.raises(StartFailed, match="exited with code 3"):
        wait_until(
            started, lambda: None, name="x", log_file=tmp_path / "x.log", timeout_s=30, poll_s=0.05
        )


def test_wait_until_stops_on_timeout(tmp_path: Path) -> None:
    started = spawn(SLEEPER, tmp_path / "s.log", {})
    with pytest.raises(StartFailed, match="not ready after"):
        wait_until(
            started,
            lambda: None,
            name="s",
            log_file=tmp_path / "s.log",
            timeout_s=0.3,
            poll_s=0.05,
            stop_grace_s=5,
        )
    assert not started.alive()


def test_a_record_without_start_time_is_never_signalled(sleeper: Started, tmp_path: Path) -> None:
    """An old-format state file naming a pid that is now someone else's: left alone."""
    state = tmp_path / "state.json"
    write_record(state, {"pid": sleeper.pid})
    assert recorded(read_record(state)) is None
    assert stop_recorded(state, grace_s=1) is False
    assert stop(Started(sleeper.pid, None), grace_s=1) is False
    assert sleeper.alive()


def test_services_down_leaves_a_reused_pid_alone(sleeper: Started, tmp_path: Path) -> None:
    """Every stop path of `vsearch services down` (servers, nightly deployment, search service)
    meets state files whose pids now belong to an unrelated live process: none signals it."""
    import json

    from vsearch.local.deployment import STATE_FILE as DEPLOY_STATE
    from vsearch.local.deployment import deploy_down
    from vsearch.local.servers import STATE_FILE as SERVERS_STATE
    from vsearch.local.servers import down
    from vsearch.local.service import DETACHED_STATE, stop_detached
    from vsearch.settings import Settings

    settings = Settings()
    settings.services.state_dir = tmp_path / "state"
    folder = settings.services.state_dir
    folder.mkdir()
    stale = {"pid": sleeper.pid, "create_time": sleeper.create_time - 1000.0}
    server = {"url": "http://x:1", "health_url": "http://x:1/h", "log_file": None, **stale}
    (folder / SERVERS_STATE).write_text(
        json.dumps(
            {"mlflow": {"name": "mlflow", **server}, "prefect": {"name": "prefect", **server}}
        )
    )
    write_record(folder / DEPLOY_STATE, stale)
    write_record(folder / DETACHED_STATE, {**stale, "url": "http://x:1"})
    assert down(settings.services) == []
    assert deploy_down(settings) is False
    assert stop_detached(folder) is False
    assert sleeper.alive() and psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE
    assert not any(folder.glob("*.json"))  # the stale records are gone


def test_a_clock_step_does_not_hide_a_recorded_process(sleeper: Started, tmp_path: Path) -> None:
    """psutil's ``create_time`` adds the boot time as the clock says *now*: an adjustment of
    the clock moves it by whole seconds. A record taken before one (its create time and boot
    time both a second off from today's reading) is still recognised and stopped."""
    assert sleeper.boot_time == psutil.boot_time()
    state = tmp_path / "state.json"
    stepped = {**sleeper.record(), "create_time": sleeper.create_time - 1.0}
    stepped["boot_time"] = sleeper.boot_time - 1.0
    write_record(state, stepped)
    assert recorded(read_record(state)) is not None
    assert stop_recorded(state, grace_s=5) is True
    assert not sleeper.alive()


def test_our_own_child_is_stopped_whatever_its_record_says(tmp_path: Path) -> None:
    """A child not yet reaped cannot have lost its pid: stopped even with a start time off."""
    child = spawn(SLEEPER, tmp_path / "child.log", {})
    wrong = Started(child.pid, (child.create_time or 0.0) - 1.0, child.proc, child.boot_time)
    assert stop(wrong, grace_s=5) is True
    assert child.proc is not None and child.proc.returncode is not None
