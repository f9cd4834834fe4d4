"""DVC at the edge: version a folder, push it to the remote, read back its content hash.

Why the ``dvc`` command and not ``dvc.repo.Repo``: the CLI is DVC's stable interface (the
Python ``Repo`` API is internal and changes between releases), and it is exactly what a person
would type to reproduce a step. DVC holds a repo lock, so callers run one DVC command at a time
(the ingest flow runs these inside a single task).

The content hash that later stages record (MLflow tags, index manifests) is the ``md5`` of the
``.dvc`` file's single output: for a folder it is DVC's directory hash (``...dir``), which
changes whenever any file in the folder changes.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from vsearch.services import TELEMETRY_OFF

log = logging.getLogger(__name__)


class DvcError(RuntimeError):
    """A DVC command failed; the message carries its stderr."""


def _dvc_bin() -> str:
    candidate = Path(sys.executable).with_name("dvc")
    return str(candidate) if candidate.exists() else (shutil.which("dvc") or "dvc")


def run_dvc(args: list[str], repo_root: Path) -> str:
    """Run ``dvc <args>`` in ``repo_root``; return stdout, raise :class:`DvcError` on failure."""
    cmd = [_dvc_bin(), *args]
    log.info("dvc %s", " ".join(args))
    proc = subprocess.run(
        cmd, cwd=repo_root, capture_output=True, text=True, env={**os.environ, **TELEMETRY_OFF}
    )
    if proc.returncode != 0:
        raise DvcError(f"`dvc {' '.join(args)}` failed in {repo_root}:\n{proc.stderr.strip()}")
    return proc.stdout


def ensure_repo(repo_root: Path, remote: str, remote_url: Path | None = None) -> None:
    """Make ``repo_root`` a DVC repo with ``remote`` configured, if it is not one already.

    The project ships ``.dvc/config`` with a local remote; this covers fresh folders (tests,
    bring-your-own-data repos). ``remote_url`` is used only when the remote is missing.
    """
    if not (repo_root / ".dvc").is_dir():
        scm = [] if (repo_root / ".git").exists() else ["--no-scm"]
        run_dvc(["init", "-q", *scm], repo_root)
        run_dvc(["config", "core.analytics", "false"], repo_root)
    remotes = run_dvc(["remote", "list"], repo_root).split()
    if remote not in remotes:
        url = remote_url or (repo_root / ".dvc-storage")
        run_dvc(["remote", "add", "-d", remote, str(url)], repo_root)


def add(path: Path, repo_root: Path) -> str:
    """``dvc add`` a file or folder; return its content hash from the written ``.dvc`` file."""
    rel = os.path.relpath(path.resolve(), repo_root.resolve())
    run_dvc(["add", "-q", rel], repo_root)
    return content_hash(path)


def push(path: Path, repo_root: Path, remote: str) -> None:
    """Upload the data of ``path``'s ``.dvc`` file to ``remote``."""
    rel = os.path.relpath(dvc_file(path).resolve(), repo_root.resolve())
    run_dvc(["push", "-q", "-r", remote, rel], repo_root)


def pull(path: Path, repo_root: Path, remote: str) -> None:
    """Restore ``path`` from ``remote`` (the round trip that proves a drop is versioned)."""
    rel = os.path.relpath(dvc_file(path).resolve(), repo_root.resolve())
    run_dvc(["pull", "-q", "-r", remote, rel], repo_root)


def dvc_file(path: Path) -> Path:
    """The ``.dvc`` file that tracks ``path``."""
    return path.with_name(path.name + ".dvc")


def content_hash(path: Path) -> str:
    """The md5 DVC recorded for ``path`` (raises if it is not tracked)."""
    f = dvc_file(path)
    if not f.is_file():
        raise DvcError(f"{path} is not tracked by DVC (no {f.name}); run `vsearch ingest` first")
    outs = (yaml.safe_load(f.read_text()) or {}).get("outs") or []
    if len(outs) != 1 or "md5" not in outs[0]:
        raise DvcError(f"{f}: expected one output with an md5, got {outs!r}")
    return str(outs[0]["md5"])
