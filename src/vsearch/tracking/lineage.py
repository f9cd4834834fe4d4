"""Lineage of a training run: which code, which data and which Prefect flow run made it.

Why a module of its own: a model version must say exactly what made it, and those answers come
from outside MLflow: git (the commit and whether the checkout was dirty), DVC (the hash of each
data input, as DVC versions it) and Prefect (the flow run that started the training).
:func:`lineage_tags` gathers them as the tags :class:`~vsearch.tracking.tracker.TrainingTracker`
puts on its MLflow run; the tracker only logs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

FLOW_RUN_ENVS = ("VSEARCH_FLOW_RUN_ID", "PREFECT__FLOW_RUN_ID")
# Tag names (the MLflow UI shows mlflow.source.git.commit as the run's source version).
TAG_GIT_SHA = "mlflow.source.git.commit"
TAG_GIT_DIRTY = "vsearch.git_dirty"
TAG_LABEL_SOURCE = "vsearch.label_source"
TAG_FLOW_RUN = "vsearch.prefect_flow_run_id"
TAG_FLOW_RUN_URL = "vsearch.prefect_flow_run_url"
TAG_DVC = "vsearch.dvc"  # vsearch.dvc.<input> = hash, .source / .path beside it


def git_state(repo_root: Path) -> tuple[str, bool]:
    """``(sha, dirty)`` of the code; ``("unknown", True)`` outside a git checkout.

    Dirty means tracked files differ from the commit (untracked data folders do not count).
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return sha, bool(status.strip())


def _lock_hash(rel: str, repo_root: Path) -> str | None:
    """The md5 ``dvc.lock`` records for the stage output at ``rel`` (any stage)."""
    import yaml

    lock = repo_root / "dvc.lock"
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    for stage in stages.values():
        for out in stage.get("outs") or []:
            if out.get("path", "").rstrip("/") == rel and out.get("md5"):
                return str(out["md5"])
    return None


def _computed_hash(path: Path) -> str:
    """sha256 over relative paths and bytes: the fallback for inputs DVC does not track."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def input_hash(path: Path, repo_root: Path) -> tuple[str, str]:
    """``(hash, source)`` of a data input, the way DVC versions it.

    ``source`` is ``dvc`` (its own ``.dvc`` file: an ingested drop), ``dvc.lock`` (a stage
    output: mining, a model folder) or ``computed`` (not versioned by DVC: our own sha256, so the
    run still pins the exact bytes).
    """
    from vsearch.data import dvc

    with contextlib.suppress(dvc.DvcError):
        return dvc.content_hash(path), "dvc"
    try:
        rel = path.resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        rel = None
    if rel is not None and (md5 := _lock_hash(rel, repo_root)):
        return md5, "dvc.lock"
    return _computed_hash(path), "computed"


def current_flow_run_id(explicit: str | None = None) -> str | None:
    """The Prefect flow run this process works for: explicit, environment, or runtime context.

    The training flow passes ``VSEARCH_FLOW_RUN_ID`` to the stage command it runs; code running
    inside a flow (Prefect already imported) gets it from ``prefect.runtime``.
    """
    if explicit:
        return explicit
    for name in FLOW_RUN_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    if "prefect" in sys.modules:  # never import Prefect (slow) just to learn we are not in a flow
        from prefect.runtime import flow_run

        run_id = flow_run.id
        return str(run_id) if run_id else None
    return None


def flow_run_url(run_id: str) -> str | None:
    """The flow run's page in the Prefect UI (``None`` when ``PREFECT_API_URL`` is not set)."""
    api = os.environ.get("PREFECT_API_URL")
    return f"{api.removesuffix('/api')}/runs/flow-run/{run_id}" if api else None


def lineage_tags(
    repo_root: Path,
    *,
    label_source: str,
    inputs: Mapping[str, Path],
    flow_run_id: str | None,
) -> dict[str, str]:
    """The run tags that say what made a model: code, data inputs, labels, Prefect flow run.

    Args:
        repo_root: git/DVC root of the code and data.
        label_source: where the training labels came from (``clicks``, ``oracle``, ``category``).
        inputs: ``name -> path`` of each data input; each gets its hash, how it was versioned
            (``dvc``, ``dvc.lock``, ``computed``) and its path.
        flow_run_id: the Prefect flow run, if any (its UI URL is added when known).
    """
    sha, dirty = git_state(repo_root)
    tags = {
        TAG_GIT_SHA: sha,
        TAG_GIT_DIRTY: str(dirty).lower(),
        TAG_LABEL_SOURCE: label_source,
    }
    for name, path in inputs.items():
        digest, source = input_hash(Path(path), repo_root)
        tags[f"{TAG_DVC}.{name}"] = digest
        tags[f"{TAG_DVC}.{name}.source"] = source
        tags[f"{TAG_DVC}.{name}.path"] = str(path)
    if flow_run_id:
        tags[TAG_FLOW_RUN] = flow_run_id
        if url := flow_run_url(flow_run_id):
            tags[TAG_FLOW_RUN_URL] = url
    return tags
