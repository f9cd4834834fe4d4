"""Background processes we start in their own session: is one alive, stop its group.

Why one module: the local servers (:mod:`vsearch.services`), the nightly deployment process
(:mod:`vsearch.scheduling`), the demo's search service (:mod:`vsearch.serving.process`) and the
index builder's stale-staging check all ask the same two questions of a pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

STOP_GRACE_S = 15.0  # SIGTERM, then SIGKILL after this long
_POLL_S = 0.2


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (one of another user's counts as alive)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group led by ``pid``, wait up to ``grace_s``, then SIGKILL it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError):  # reap our child so it is no zombie
            os.waitpid(pid, os.WNOHANG)
        time.sleep(_POLL_S)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
