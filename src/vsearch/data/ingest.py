"""Bring a drop into the project: validate → quarantine → stage into ``data/raw`` → DVC →
record in the drop ledger → select the window of drops the learning stages read.

Why in this order: nothing reaches ``data/raw/<drop_id>/`` unless the drop passed its critical
expectations, and an existing drop is never overwritten. Staging writes into a hidden temporary
folder and renames it into place, so a crash mid-copy leaves either nothing or the complete
drop. Only a drop that is versioned is recorded in the ledger (``ingest.ledger_file``), and only
recorded drops are validation history and window members. The same step functions are called by
the CLI (``vsearch ingest``, via :func:`ingest_drop`) and, one task each, by the Prefect flows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vsearch.contracts import (
    DROP_MANIFEST,
    DROP_TABLES,
    NO_TRUTH_FILE,
    REMOVED,
    SNAPSHOT,
    drop_kind,
    has_truth,
    read_drop_manifest,
    unsafe_image_path,
    read_ledger,
    write_table,
)
from vsearch.data import dvc
from vsearch.errors import BadInput
from vsearch.fsio import atomic_write_json, atomic_write_text
from vsearch.settings import Settings

log = logging.getLogger(__name__)

QUARANTINE_REASON = "reason"


@dataclass
class IngestResult:
    """What an ingest produced: where the data is, its DVC hash and the validation outcome."""

    drop_id: str
    raw_path: str
    dvc_hash: str | None
    rows: dict[str, int]
    quarantined: dict[str, int]
    report_path: str
    docs_path: str | None
    truth_path: str | None = None
    pushed: bool = False
    failures: list[str] = field(default_factory=list)
    kind: str = SNAPSHOT
    created_at: str | None = None
    source: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_paths(settings: Settings, repo_root: Path) -> dict[str, Path]:
    """Absolute data/report folders (settings hold them relative to the project root)."""
    ing = settings.ingest

    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (repo_root / p)

    return {
        "raw": absolute(ing.raw_dir),
        "quarantine": absolute(ing.quarantine_dir),
        "truth": absolute(ing.truth_dir),
        "reports": absolute(ing.validation_reports_dir),
        "current": absolute(ing.current_file),
        "ledger": absolute(ing.ledger_file),
        "window": absolute(ing.window_dir),
        "window_truth": absolute(ing.window_truth_dir),
        "scratch": absolute(ing.incoming_scratch),
    }


def _refuse_unsafe(drop: Path, rel: str) -> None:
    """Never copy a file from outside the drop (validation refuses such a drop first; this
    guards callers that stage without it)."""
    why = unsafe_image_path(drop, rel)
    if why is not None:
        raise BadInput(f"drop {drop}: image path {rel!r} refused: {why} (image_path_safe)")


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # same filesystem: free and instant; DVC copies into its cache anyway
    except OSError:
        shutil.copy2(src, dst)


def stage_drop(
    drop: Path, drop_id: str, clean: dict[str, pd.DataFrame], raw_dir: Path, manifest: dict
) -> Path:
    """Write the clean tables and their images to ``raw_dir/<drop_id>`` atomically.

    Raises ``BadInput`` if that drop was already ingested: a drop is immutable once versioned.
    """
    target = raw_dir / drop_id
    if target.exists():
        raise BadInput(
            f"drop {drop_id!r} is already in {raw_dir}; drops are immutable once ingested: "
            "give the new data its own drop_id"
        )
    tmp = raw_dir / f".{drop_id}.staging"
    if tmp.exists():
        shutil.rmtree(tmp)  # left over from a crashed ingest: never visible as a drop
    tmp.mkdir(parents=True)
    try:
        for contract in (*DROP_TABLES, REMOVED):
            frame = clean.get(contract.name)
            if frame is None:  # the optional removed table of a delta
                continue
            write_table(frame, contract, tmp)
            if "image" in frame.columns:
                for rel in frame["image"].dropna().unique():
                    _refuse_unsafe(drop, str(rel))
                    _link_or_copy(drop / rel, tmp / rel)
        (tmp / DROP_MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("staged drop %s -> %s", drop_id, target)
    return target


def write_quarantine(drop_id: str, quarantined: dict[str, pd.DataFrame], q_dir: Path) -> dict:
    """Keep rejected rows (with their ``reason``) under ``data/quarantine/<drop_id>/``."""
    counts: dict[str, int] = {}
    folder = q_dir / drop_id
    for name, frame in quarantined.items():
        if frame is None or frame.empty:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / f"{name}.parquet", index=False)
        counts[name] = len(frame)
    if counts:
        log.warning("quarantined rows of %s: %s (see %s)", drop_id, counts, folder)
    return counts


def copy_truth(truth: Path, truth_dir: Path, drop_id: str) -> Path:
    """Demo world only: keep ground truth apart from the drop (read by evaluation alone)."""
    target = truth_dir / drop_id
    if target.exists():
        raise BadInput(f"ground truth for {drop_id!r} already exists at {target}")
    shutil.copytree(truth, target)
    return target


def write_no_truth(truth_dir: Path, drop_id: str) -> Path:
    """A drop without ground truth (every real shop's): its truth folder holds only a marker.

    Why a folder at all: it says, next to the drops that have truth, that this one has none
    (:func:`vsearch.contracts.has_truth`); the ``window`` stage merges the window's truth into
    ``ingest.window_truth_dir`` only when every drop has it: without, the oracle is skipped and
    evaluation reports click metrics only. A drop with no truth folder at all (ingested by an
    older vsearch) counts as without truth.
    """
    target = truth_dir / drop_id
    if target.exists():
        raise BadInput(f"a truth folder for {drop_id!r} already exists at {target}")
    target.mkdir(parents=True)
    atomic_write_json(
        target / NO_TRUTH_FILE,
        {"drop_id": drop_id, "truth": False, "why": "the drop came without ground truth"},
    )
    return target


def version(path: Path, repo_root: Path, remote: str, push: bool) -> str:
    """``dvc add`` (and push) a folder; returns its DVC content hash."""
    dvc.ensure_repo(repo_root, remote)
    digest = dvc.add(path, repo_root)
    if push:
        dvc.push(path, repo_root, remote)
    return digest


def validate_step(
    drop: Path, settings: Settings, repo_root: Path, accept_volume: bool = False
) -> tuple[Any, Path]:
    """Validation as the ingest gate: ``validation.stage.run_validation``, raising on failure.

    History is the drop ledger (drops ingested so far, of this drop's kind); a delta's
    impressions may show the listings of the current window view.

    Raises:
        GateFailed: a critical expectation failed (the report is written all the same).
    """
    from vsearch.validation.stage import require_success, run_validation

    paths = resolve_paths(settings, repo_root)
    result, report_path = run_validation(
        drop,
        settings.validation,
        paths["reports"],
        ledger=paths["ledger"],
        known_catalog_dir=paths["window"],
        accept_volume=accept_volume,
    )
    require_success(result, report_path, f"nothing was added to {paths['raw']}")
    return result, report_path


def stage_step(
    drop: Path,
    result: Any,
    report_path: Path,
    settings: Settings,
    repo_root: Path,
    truth: Path | None = None,
    origin: str | None = None,
) -> IngestResult:
    """Quarantine rejected rows, stage the clean drop (and demo truth) under ``data/``.

    ``origin`` is where the drop came from when ``drop`` is a local copy (a remote incoming
    location); the drop's own ``source`` in drop.json wins.
    """
    paths = resolve_paths(settings, repo_root)
    drop_id = result.drop_id
    q_counts = write_quarantine(drop_id, result.quarantined, paths["quarantine"])
    rows = {k: len(v) for k, v in result.clean.items()}
    given = read_drop_manifest(drop)
    ingested_at = datetime.now(UTC).isoformat()
    manifest = {
        "drop_id": drop_id,
        "kind": drop_kind(given),
        "created_at": str(given.get("created_at") or ingested_at),
        "source": str(given.get("source") or origin or drop.resolve()),
        "ingested_at": ingested_at,
        "rows": rows,
        "quarantined": q_counts,
        "validation_report": str(report_path),
    }
    raw_path = stage_drop(drop.resolve(), drop_id, result.clean, paths["raw"], manifest)
    truth_path = (
        copy_truth(truth, paths["truth"], drop_id)
        if truth
        else write_no_truth(paths["truth"], drop_id)
    )
    return IngestResult(
        drop_id=drop_id,
        raw_path=str(raw_path),
        dvc_hash=None,
        rows=rows,
        quarantined=q_counts,
        report_path=str(report_path),
        docs_path=str(result.docs_path) if result.docs_path else None,
        truth_path=str(truth_path) if truth_path else None,
        kind=manifest["kind"],
        created_at=manifest["created_at"],
        source=manifest["source"],
        stats=result.stats.to_dict(),
    )


def version_step(staged: IngestResult, settings: Settings, repo_root: Path) -> IngestResult:
    """Version the staged drop (and its truth) with DVC and push to the configured remote."""
    ing = settings.ingest
    staged.dvc_hash = version(Path(staged.raw_path), repo_root, ing.dvc_remote, ing.dvc_push)
    if staged.truth_path:
        version(Path(staged.truth_path), repo_root, ing.dvc_remote, ing.dvc_push)
    staged.pushed = ing.dvc_push
    return staged


def record_step(res: IngestResult, settings: Settings, repo_root: Path) -> Path:
    """Add a versioned drop to the drop ledger (``ingest.ledger_file``); idempotent.

    The ledger is what makes a drop part of this project: the nightly skips drops it holds,
    the window is chosen from it, and its ``stats`` are the validation history.
    """
    path = resolve_paths(settings, repo_root)["ledger"]
    records = read_ledger(path)
    if any(r.get("drop_id") == res.drop_id for r in records):
        return path
    records.append(
        {
            "drop_id": res.drop_id,
            "kind": res.kind,
            "created_at": res.created_at,
            "ingested_at": datetime.now(UTC).isoformat(),
            "dvc_hash": res.dvc_hash,
            "source": res.source,
            "truth": res.truth_path is not None,
            "stats": res.stats,
        }
    )
    write_ledger(path, records)
    log.info("recorded drop %s (%s) in %s", res.drop_id, res.kind, path)
    return path


def write_ledger(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write the drop ledger atomically (``{"drops": [...]}``, oldest first; read back by
    :func:`vsearch.contracts.read_ledger`)."""
    body = {"drops": records}
    return atomic_write_text(path, json.dumps(body, indent=2, default=str) + "\n")


def ingested_ids(settings: Settings, repo_root: Path) -> set[str]:
    """Ids of the drops in the ledger."""
    path = resolve_paths(settings, repo_root)["ledger"]
    return {str(r.get("drop_id")) for r in read_ledger(path)}


def _has_window_stage(repo_root: Path) -> bool:
    import yaml

    dvc_yaml = repo_root / "dvc.yaml"
    if not dvc_yaml.is_file():
        return False
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    return "window" in stages


def select_window(settings: Settings, repo_root: Path) -> dict[str, Any]:
    """Choose the window from the ledger, name it in ``ingest.current_file``, build the view.

    Why a pointer file: ``dvc.yaml``'s ``window`` stage lists its ``window`` key (each drop with
    its DVC hash) as a parameter, so DVC rebuilds ``data/window`` (and the learning stages
    rerun) exactly when the window's drops change; ``drop`` names the newest drop. Written
    atomically and only when it changes. The view is built by that DVC stage when the project
    has one (so ``dvc.lock`` records it), else directly by the same function.

    Returns:
        ``{"drop": newest, "window": [...], "changed": bool, "view": path}``.

    Raises:
        BadInput: no drop was ingested yet.
    """
    import yaml

    from vsearch.data.window import build_view, merge_truth
    from vsearch.data.window import select_window as choose

    paths = resolve_paths(settings, repo_root)
    records = read_ledger(paths["ledger"])
    if not records:
        raise BadInput(
            f"{paths['ledger']}: no drop ingested yet; put one in {settings.ingest.incoming} "
            "and run `vsearch pipeline`, or `vsearch ingest DROP`"
        )
    drops = choose(records, settings.ingest.window)
    body = {"drop": drops[-1].drop_id, "window": [d.to_dict() for d in drops]}
    text = (
        "# Written by `vsearch ingest` / the nightly: the window of drops mine/train/evaluate\n"
        "# read (merged into ingest.window_dir by the `window` stage); drop = the newest.\n"
        + yaml.safe_dump(body, sort_keys=False)
    )
    path = paths["current"]
    changed = not path.is_file() or path.read_text() != text
    if changed:
        atomic_write_text(path, text)
        log.info("window of %d drops selected, newest %s (%s)", len(drops), body["drop"], path)
    if _has_window_stage(repo_root):
        dvc.repro("window", repo_root)
    elif changed or not (paths["window"] / DROP_MANIFEST).is_file():
        build_view(drops, paths["raw"], paths["window"])
        merge_truth(drops, paths["truth"], paths["window_truth"])
    return {**body, "changed": changed, "view": str(paths["window"])}


def select_drop(res: IngestResult, settings: Settings, repo_root: Path) -> Path:
    """After ingesting ``res``: select the window (it now ends with ``res``); the pointer file."""
    select_window(settings, repo_root)
    return resolve_paths(settings, repo_root)["current"]


def current_drop(settings: Settings, repo_root: Path) -> str:
    """The newest drop of the window ``ingest.current_file`` selects.

    Raises:
        BadInput: no drop was ingested yet.
    """
    import yaml

    path = resolve_paths(settings, repo_root)["current"]
    if not path.is_file():
        raise BadInput(f"{path}: no drop selected yet; run `vsearch ingest DROP` or `make demo`")
    return str(yaml.safe_load(path.read_text())["drop"])


def current_view(settings: Settings, repo_root: Path) -> Path:
    """The drop-format folder the learning stages read: the merged window view.

    Falls back to ``data/raw/<newest drop>`` in a project whose view was not built yet.
    """
    paths = resolve_paths(settings, repo_root)
    if (paths["window"] / DROP_MANIFEST).is_file():
        return paths["window"]
    return paths["raw"] / current_drop(settings, repo_root)


def ingest_drop(
    drop: Path,
    settings: Settings,
    repo_root: Path,
    truth: Path | None = None,
    accept_volume: bool = False,
) -> IngestResult:
    """Validate a drop and, only if it passes, add it to ``data/raw``, version it with DVC,
    record it in the ledger and select the window that ends with it.

    Raises:
        BadInput: the drop folder is missing/unreadable or was already ingested.
        GateFailed: a critical expectation failed; nothing was added to ``data/raw``.
    """
    result, report_path = validate_step(drop, settings, repo_root, accept_volume)
    staged = stage_step(drop, result, report_path, settings, repo_root, truth)
    res = version_step(staged, settings, repo_root)
    record_step(res, settings, repo_root)
    select_window(settings, repo_root)
    return res


def list_drops(raw_dir: Path) -> list[dict[str, str]]:
    """Ingested drops with their DVC hashes, oldest first (what training and MLflow record)."""
    drops = []
    for f in sorted(raw_dir.glob("*.dvc")):
        path = f.with_suffix("")
        drops.append({"drop_id": path.name, "path": str(path), "dvc_hash": dvc.content_hash(path)})
    return drops


def existing_drop(drop_id: str, settings: Settings, repo_root: Path) -> IngestResult | None:
    """The record of an already-ingested, DVC-tracked drop (``None`` if it is not there)."""
    paths = resolve_paths(settings, repo_root)
    raw = paths["raw"] / drop_id
    if not dvc.dvc_file(raw).is_file():
        return None
    manifest = json.loads((raw / DROP_MANIFEST).read_text()) if raw.is_dir() else {}
    truth = paths["truth"] / drop_id
    return IngestResult(
        drop_id=drop_id,
        raw_path=str(raw),
        dvc_hash=dvc.content_hash(raw),
        rows=manifest.get("rows", {}),
        quarantined=manifest.get("quarantined", {}),
        report_path=manifest.get("validation_report", ""),
        docs_path=_report_docs(manifest.get("validation_report")),
        truth_path=str(truth) if truth.is_dir() else None,
        pushed=settings.ingest.dvc_push,
        kind=manifest.get("kind") or SNAPSHOT,
        created_at=manifest.get("created_at") or manifest.get("ingested_at"),
        source=manifest.get("source"),
        stats=_report_stats(manifest.get("validation_report")),
    )


def reused_demo_drop(drop: Path, settings: Settings, repo_root: Path) -> IngestResult | None:
    """The ingest record of a reused demo world folder when it was ingested already.

    Why: ``vsearch demo`` re-runs on the world it generated (same folder, same files); that
    world was validated when it was first ingested, and validating it again would spend a
    quarter of the unchanged re-run's minute on a known answer. ``None``: not ingested yet.
    """
    from vsearch.validation.tables import drop_id_of

    return existing_drop(drop_id_of(drop), settings, repo_root)


def _report(report: str | None) -> dict[str, Any]:
    """A drop's JSON validation report ({} when it is gone or unreadable)."""
    try:
        return dict(json.loads(Path(report).read_text())) if report else {}
    except (OSError, ValueError, TypeError):
        return {}


def _report_stats(report: str | None) -> dict[str, Any]:
    """The validation stats of a drop ingested before the ledger existed (its JSON report)."""
    stats = _report(report).get("stats")
    return dict(stats) if isinstance(stats, dict) else {}


def _report_docs(report: str | None) -> str | None:
    """The Data Docs page its validation built, while it still exists (a re-run shows it)."""
    docs = _report(report).get("docs_path")
    return docs if isinstance(docs, str) and Path(docs).is_file() else None


def _demo_paths(
    settings: Settings, repo_root: Path, seed: int, items: int, queries: int
) -> tuple[Path, Path]:
    data_dir = settings.project.data_dir
    base = (data_dir if data_dir.is_absolute() else repo_root / data_dir) / "world"
    drop = base / f"demo-s{seed}-i{items}-q{queries}"
    return drop, base / f"{drop.name}.truth"


def demo_world_ready(
    settings: Settings,
    repo_root: Path,
    *,
    seed: int,
    items: int | None = None,
    queries: int | None = None,
) -> bool:
    """Whether :func:`demo_drop` would reuse a generated world (the demo's timing says so)."""
    w = settings.world
    drop, truth = _demo_paths(settings, repo_root, seed, items or w.items, queries or w.queries)
    return (drop / DROP_MANIFEST).is_file() and truth.is_dir()


def demo_drop(
    settings: Settings,
    repo_root: Path,
    *,
    seed: int,
    items: int | None = None,
    queries: int | None = None,
) -> tuple[Path, Path]:
    """Generate the built-in demo world under ``<data_dir>/world/`` (reused if already there).

    Returns:
        The drop folder and its separate ground-truth folder.
    """
    from vsearch.world import generate_world

    w = settings.world
    n_items, n_queries = items or w.items, queries or w.queries
    drop, truth = _demo_paths(settings, repo_root, seed, n_items, n_queries)
    if demo_world_ready(settings, repo_root, seed=seed, items=items, queries=queries):
        log.info("demo world %s already generated: reusing", drop)
        return drop, truth
    for leftover in (drop, truth):  # an interrupted generation: start clean
        shutil.rmtree(leftover, ignore_errors=True)
    generate_world(w, drop, truth, seed=seed, items=n_items, queries=n_queries)
    return drop, truth


def ingest_markdown(res: IngestResult, reused: bool = False) -> str:
    """The ingest report as markdown (the Prefect artifact; also printed by the CLI)."""
    lines = [
        f"# Ingest of {res.kind} drop `{res.drop_id}`"
        + (" (already ingested, reused)" if reused else ""),
        "",
        "| table | rows kept | rows quarantined |",
        "| --- | ---: | ---: |",
    ]
    for name, n in res.rows.items():
        lines.append(f"| {name} | {n} | {res.quarantined.get(name, 0)} |")
    lines += [
        "",
        f"- data: `{res.raw_path}`",
        f"- DVC hash: `{res.dvc_hash}`" + (" (pushed)" if res.pushed else ""),
        f"- validation report: `{res.report_path}`",
    ]
    if res.docs_path:
        lines.append(f"- Data Docs: `{res.docs_path}`")
    if res.truth_path and has_truth(Path(res.truth_path)):
        lines.append(f"- ground truth (evaluation only): `{res.truth_path}`")
    elif res.truth_path:
        lines.append(f"- no ground truth (click metrics only): `{res.truth_path}`")
    return "\n".join(lines) + "\n"
