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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from vsearch.local.env import TELEMETRY_OFF

log = logging.getLogger(__name__)
REPRO_TAIL_LINES = 40  # output lines a failed stage's error carries


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
        said = proc.stderr.strip() or proc.stdout.strip()  # some errors go to stdout
        raise DvcError(f"`dvc {' '.join(args)}` failed in {repo_root}:\n{said}")
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


def status(stages: list[str], repo_root: Path) -> dict[str, Any]:
    """``dvc status --json`` of ``stages`` that ``dvc.yaml`` defines: what changed since they ran.

    Returns:
        ``{stage: [changes...]}`` for each stage whose command, deps, params or outs changed
        (or that never ran); ``{}`` when all are up to date or the project has no stage DAG.
    """
    import json

    dvc_yaml = repo_root / "dvc.yaml"
    if not dvc_yaml.is_file():
        return {}
    defined = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    targets = [s for s in stages if s in defined]
    if not targets:
        return {}
    out = run_dvc(["status", "--json", *targets], repo_root).strip()
    return dict(json.loads(out)) if out else {}


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


def lock_hash(stage: str, out: str, repo_root: Path) -> str | None:
    """The md5 ``dvc.lock`` records for output ``out`` of ``stage`` (``None`` if not run yet).

    Stage outputs (mining, model folders) are versioned by ``dvc.lock`` rather than by their own
    ``.dvc`` files; this is the hash MLflow runs and index manifests record for them.
    """
    lock = repo_root / "dvc.lock"
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    for entry in stages.get(stage, {}).get("outs") or []:
        if entry.get("path") == out:
            return str(entry.get("md5"))
    return None


def repro(
    stage: str,
    repo_root: Path,
    env: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    force: bool = False,
) -> bool:
    """``dvc repro --single-item STAGE``: run one stage of ``dvc.yaml`` if its inputs changed.

    Why through DVC rather than calling the stage function: DVC decides from the hashes of the
    stage's deps and params whether anything changed, so an unchanged stage is skipped (and its
    cached outputs restored) by the same rule whether a person runs ``dvc repro`` or the flow
    does. The stage command's output (progress, logs) is streamed to ``on_line`` as it comes.
    ``force`` runs it even when nothing DVC tracks changed (``--force``: the baselines flow
    re-evaluates so the report shows the figures it just measured).

    Returns:
        ``True`` when the stage ran, ``False`` when DVC skipped it as unchanged.

    Raises:
        DvcError: the stage (or DVC) failed; the message carries the last lines of output.
    """
    bin_dir = str(Path(sys.executable).parent)  # stage commands call `vsearch` from this env
    full_env = {**os.environ, **TELEMETRY_OFF, **(env or {})}
    full_env["PATH"] = bin_dir + os.pathsep + full_env.get("PATH", "")
    cmd = [_dvc_bin(), "repro", "--single-item", *(["--force"] if force else []), stage]
    log.info("dvc repro --single-item %s%s", "--force " if force else "", stage)
    tail: list[str] = []
    skipped = False
    with subprocess.Popen(
        cmd,
        cwd=repo_root,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line:
                continue
            skipped = skipped or "didn't change, skipping" in line
            tail = [*tail[-(REPRO_TAIL_LINES - 1) :], line]
            if on_line is not None:
                on_line(line)
    if proc.returncode != 0:
        raise DvcError(f"`dvc repro {stage}` failed in {repo_root}:\n" + "\n".join(tail))
    return not skipped
