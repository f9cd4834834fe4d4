"""Background processes on this machine: spawn, wait until ready, record, find again, stop.

Why one module: the MLflow and Prefect servers (:mod:`vsearch.local.servers`), the nightly
deployment (:mod:`vsearch.local.deployment`) and the demo's search service
(:mod:`vsearch.local.service`) are all started the same way: in a session of their own (so
stopping the group also stops their workers), output appended to a log file, polled until a
health check answers, and recorded in a small JSON state file so a later command can stop them.

A state file records the pid *and* the process's start time (psutil's ``create_time``). A pid
is reused by the OS once its process is gone, so before signalling a recorded pid we check that
the process behind it started when the recorded one did; a stranger is never signalled.

The comparison is of time since boot, not of ``create_time`` itself: psutil adds the boot time
as the clock reports it *now* (``btime`` of ``/proc/stat``), and a clock adjustment moves that by
whole seconds: a service started before one would be taken for a stranger and never stopped.
The record keeps the boot time read with the start time; our own child, not yet reaped, cannot
have lost its pid and is always recognised.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from vsearch.fsio import atomic_write_json

T = TypeVar("T")
log = logging.getLogger(__name__)

STOP_GRACE_S = 15.0  # SIGTERM, then SIGKILL after this long
SAME_START_S = 0.05  # create_time values this close are the same process (clock-tick rounding)


class StartFailed(RuntimeError):
    """A started process exited or did not become ready in time (the message names its log)."""


def create_time(pid: int) -> float | None:
    """When the process ``pid`` started (seconds since the epoch), ``None`` if there is none."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None


def _same(
    pid: int | None, started: float | None, boot: float | None = None
) -> psutil.Process | None:
    """The process ``pid`` if it exists and (when ``started`` is known) started then.

    ``boot`` is the boot time read together with ``started``: then the two are compared as
    time since boot, which no clock adjustment moves (without it, as recorded before boot
    times were kept: ``create_time`` as it is)."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if started is not None:
            now = proc.create_time()
            if boot is not None:
                now, started = now - psutil.boot_time(), started - boot
            if abs(now - started) > SAME_START_S:
                return None  # the pid was reused by another process
        return proc
    except psutil.NoSuchProcess:
        return None


def pid_alive(pid: int | None, started: float | None = None, boot: float | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when ``started`` is given, is that process.

    Args:
        pid: the process id (``None`` or 0: no process).
        started: its recorded ``create_time``; ``None`` accepts whichever process has the pid
            (state files written before start times were recorded).
        boot: the boot time recorded with ``started`` (see :func:`_same`).
    """
    proc = _same(pid, started, boot)
    if proc is None:
        return False
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


@dataclass
class Started:
    """A process we started (or found again from its state file).

    Attributes:
        pid: its process id (also its process group id: it leads its own session).
        create_time: its start time, to tell it apart from a later process with the same pid.
        proc: the ``Popen`` handle when this process is its parent (exit code, reaping).
        boot_time: the boot time read with ``create_time`` (``None`` in records older than
            it): the identity check compares time since boot.
    """

    pid: int
    create_time: float | None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    boot_time: float | None = None

    @classmethod
    def child(cls, proc: subprocess.Popen[bytes]) -> Started:
        """A process this one just started."""
        return cls(proc.pid, create_time(proc.pid), proc, psutil.boot_time())

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.pid, self.create_time, self.boot_time)

    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def record(self) -> dict[str, Any]:
        """What a state file keeps about it."""
        return {"pid": self.pid, "create_time": self.create_time, "boot_time": self.boot_time}


def spawn(
    argv: Sequence[str],
    log_file: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
) -> Started:
    """Start ``argv`` in its own session, stdout and stderr appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: stopping it stops its workers too
        )
    return Started.child(proc)


def wait_until(
    started: Started,
    ready: Callable[[], T | None],
    *,
    name: str,
    log_file: Path,
    timeout_s: float,
    poll_s: float,
    stop_on_timeout: bool = True,
    stop_grace_s: float = STOP_GRACE_S,
) -> T:
    """Poll ``ready()`` until it returns something other than ``None`` (and return that).

    Raises:
        StartFailed: the process exited first, or ``timeout_s`` passed (then it is stopped,
            unless ``stop_on_timeout`` is off).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not started.alive():
            code = started.exit_code()
            how = f" with code {code}" if code is not None else ""
            raise StartFailed(f"{name} exited{how} while starting; see {log_file}")
        value = ready()
        if value is not None:
            return value
        time.sleep(poll_s)
    if stop_on_timeout:
        stop(started, stop_grace_s)
    raise StartFailed(f"{name} not ready after {timeout_s:.0f} s; see {log_file}")


def stop(started: Started, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM the process group ``started`` leads, wait up to ``grace_s``, then SIGKILL it.

    Nothing is signalled unless the pid still belongs to the recorded process (same
    ``create_time``; a pid without a start time is signalled only when it is our own child).
    Returns whether it was running. Waits until the processes are gone (their ports are free
    for a successor); our own child is reaped so it is no zombie.
    """
    if started.create_time is None and started.proc is None:
        # A pid from a file with no start time could be anyone's by now: never signal it.
        log.warning("pid %d has no recorded start time; not signalling it", started.pid)
        return False
    leader = _own_child(started) or _same(started.pid, started.create_time, started.boot_time)
    if leader is None:
        return False
    try:
        procs = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    running = leader.is_running() and leader.status() != psutil.STATUS_ZOMBIE
    _signal_group(started.pid, procs, signal.SIGTERM)
    _gone, alive = psutil.wait_procs(procs, timeout=grace_s)
    if alive:
        _signal_group(started.pid, alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=grace_s)
    if started.proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            started.proc.wait(timeout=0)
    return running


def _own_child(started: Started) -> psutil.Process | None:
    """``started`` when it is our child not yet reaped: its pid cannot have been reused."""
    if started.proc is None or started.proc.returncode is not None:
        return None
    try:
        return psutil.Process(started.pid)
    except psutil.NoSuchProcess:
        return None


def _signal_group(pgid: int, procs: Sequence[psutil.Process], sig: int) -> None:
    """Signal the process group and any member of ``procs`` that left it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            p.send_signal(sig)


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Write a state file atomically (a reader never sees half of it)."""
    atomic_write_json(path, dict(record), indent=None, sort_keys=False)


def read_record(path: Path) -> dict[str, Any] | None:
    """A state file's content (``None`` when there is none)."""
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def recorded(record: Mapping[str, Any] | None) -> Started | None:
    """The process a state-file record names, if it still runs (same pid *and* start time);
    ``None`` for a record without a start time (written before they were recorded: that pid
    may belong to anyone now)."""
    if not record or not record.get("pid") or record.get("create_time") is None:
        return None  # no start time: the pid cannot be told apart from a reused one
    found = Started(
        int(record["pid"]), record.get("create_time"), boot_time=record.get("boot_time")
    )
    return found if found.alive() else None


def stop_recorded(path: Path, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop the process a state file names (if it is still that process); remove the file."""
    found = recorded(read_record(path))
    path.unlink(missing_ok=True)
    return stop(found, grace_s) if found is not None else False
