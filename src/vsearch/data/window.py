"""The window: the ingested drops the learning stages read, merged into one drop-format view.

Why a merged view: mining, training and evaluation read *a drop* (one catalog, one click log).
A shop sends a full snapshot now and then and deltas in between (new clicks, new or changed
listings, removed listings), so what they must read is the state after the newest drop plus the
click logs of the last N drops (or D days): one folder in the drop format, ``data/window``,
where

- the catalog is folded over the drops from the latest snapshot on: a snapshot replaces it, a
  delta's rows replace the rows of the same ``item_id`` (the latest listing row wins) and its
  ``removed`` ids are taken out;
- queries and impressions are the concatenated logs of the window's drops; impressions of a
  listing that is gone are dropped and ``click_order`` is renumbered so every list stays valid;
- images stay where they are: the view hard-links them (a copy across file systems) under
  ``<drop_id>/...`` and the tables' image paths say so.

Which drops: :func:`select_window` over the drop ledger, written into ``ingest.current_file``
(``window:`` with each drop's DVC hash). The ``window`` stage of ``dvc.yaml`` lists that key as
its parameter, so DVC rebuilds the view exactly when the window's drops change (drops are
immutable once ingested), and the learning stages depend on the view.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from vsearch.contracts import (
    CATALOG,
    DELTA,
    DROP_MANIFEST,
    IMPRESSIONS,
    QUERIES,
    REMOVED,
    SNAPSHOT,
    has_table,
    unsafe_image_path,
    read_table,
    write_table,
)
from vsearch.errors import BadInput
from vsearch.fsio import atomic_write_text, fsync_tree
from vsearch.settings import WindowSettings

log = logging.getLogger(__name__)

VIEW_ID_PREFIX = "window"


@dataclass(frozen=True)
class WindowDrop:
    """One drop of the window: its id, kind, DVC hash and whether its click logs count."""

    drop_id: str
    kind: str
    dvc_hash: str | None
    clicks: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "drop": self.drop_id,
            "kind": self.kind,
            "dvc_hash": self.dvc_hash,
            "clicks": self.clicks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowDrop:
        return cls(
            drop_id=str(data["drop"]),
            kind=str(data.get("kind") or SNAPSHOT),
            dvc_hash=data.get("dvc_hash"),
            clicks=bool(data.get("clicks", True)),
        )


def _created(record: dict[str, Any]) -> datetime:
    text = record.get("created_at") or record.get("ingested_at")
    try:
        ts = pd.Timestamp(text)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    if pd.isna(ts):
        return datetime.min.replace(tzinfo=UTC)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def select_window(records: Sequence[dict[str, Any]], settings: WindowSettings) -> list[WindowDrop]:
    """The drops of the window, oldest first (pure: the ledger's records in, the window out).

    Click logs: the newest ``settings.drops`` drops and/or those created within
    ``settings.days`` of the newest (0 = no limit). Catalog: from the latest snapshot at or
    before the oldest of those on, so listings that did not change since stay listed.

    Args:
        records: the drop ledger (oldest first, as ingested).
        settings: ``ingest.window``.
    """
    recs = list(records)
    if not recs:
        return []
    logs = recs[-settings.drops :] if settings.drops else recs
    if settings.days:
        horizon = _created(recs[-1]) - timedelta(days=settings.days)
        logs = [r for r in logs if _created(r) >= horizon] or recs[-1:]
    first = next(i for i, r in enumerate(recs) if r is logs[0])
    snapshots = [i for i in range(first + 1) if (recs[i].get("kind") or SNAPSHOT) == SNAPSHOT]
    start = snapshots[-1] if snapshots else 0
    log_ids = {id(r) for r in logs}
    return [
        WindowDrop(
            drop_id=str(r["drop_id"]),
            kind=str(r.get("kind") or SNAPSHOT),
            dvc_hash=r.get("dvc_hash"),
            clicks=id(r) in log_ids,
        )
        for r in recs[start:]
    ]


def _prefixed(frame: pd.DataFrame, drop_id: str) -> pd.DataFrame:
    out = frame.copy()
    out["image"] = drop_id + "/" + out["image"].astype(str)
    return out


def _renumber_clicks(imp: pd.DataFrame) -> pd.DataFrame:
    """``click_order`` as 0..n-1 per query over the clicked rows that are left."""
    out = imp.copy()
    clicked = out["clicked"].eq(True) & out["click_order"].notna()
    if clicked.any():
        ranks = out.loc[clicked].groupby("query_id")["click_order"].rank(method="first") - 1
        out.loc[clicked, "click_order"] = ranks.astype("int64")
    return out


def merge_drops(
    parts: Sequence[tuple[WindowDrop, dict[str, pd.DataFrame]]],
) -> dict[str, pd.DataFrame]:
    """Merge the window's drops into one consistent set of drop tables (pure).

    Args:
        parts: each window drop (oldest first) with its tables (``catalog``, ``queries``,
            ``impressions`` and, for a delta, ``removed``), image paths relative to the drop.

    Returns:
        ``catalog``, ``queries``, ``impressions`` with image paths ``<drop_id>/<path>``.
    """
    catalog: pd.DataFrame | None = None
    queries, impressions = [], []
    for drop, tables in parts:
        rows = _prefixed(tables[CATALOG.name], drop.drop_id)
        if drop.kind == SNAPSHOT or catalog is None:
            catalog = rows
        else:
            kept = catalog[~catalog["item_id"].isin(rows["item_id"])]
            catalog = pd.concat([kept, rows], ignore_index=True)
        removed = tables.get(REMOVED.name)
        if drop.kind == DELTA and removed is not None and len(removed):
            catalog = catalog[~catalog["item_id"].isin(removed["item_id"])]
        if drop.clicks:
            queries.append(_prefixed(tables[QUERIES.name], drop.drop_id))
            impressions.append(tables[IMPRESSIONS.name])
    if catalog is None:
        raise BadInput("the window holds no drop: ingest one first (`vsearch ingest DROP`)")
    catalog = catalog.reset_index(drop=True)
    q = pd.concat(queries, ignore_index=True) if queries else QUERIES.empty()
    imp = pd.concat(impressions, ignore_index=True) if impressions else IMPRESSIONS.empty()
    dup_q, dup_e = int(q["query_id"].duplicated().sum()), int(imp["event_id"].duplicated().sum())
    if dup_q or dup_e:
        log.warning(
            "window: %d query ids and %d event ids repeat across drops; the latest drop's wins",
            dup_q,
            dup_e,
        )
    q = q.drop_duplicates("query_id", keep="last").reset_index(drop=True)
    imp = imp.drop_duplicates("event_id", keep="last")
    live = imp["item_id"].isin(catalog["item_id"]) & imp["query_id"].isin(q["query_id"])
    if not live.all():
        log.info("window: %d impressions of listings no longer listed dropped", int((~live).sum()))
    imp = _renumber_clicks(imp[live].reset_index(drop=True))
    return {CATALOG.name: catalog, QUERIES.name: q, IMPRESSIONS.name: imp}


def read_drop_tables(folder: Path, kind: str) -> dict[str, pd.DataFrame]:
    """The contract tables of an ingested drop (``removed`` for a delta that has one)."""
    tables = {c.name: read_table(folder, c) for c in (CATALOG, QUERIES, IMPRESSIONS)}
    if kind == DELTA and has_table(folder, REMOVED):
        tables[REMOVED.name] = read_table(folder, REMOVED)
    return tables


def view_id(drops: Sequence[WindowDrop]) -> str:
    """A short id for a window: changes whenever a drop, its hash or its role changes."""
    import hashlib

    body = json.dumps([d.to_dict() for d in drops], sort_keys=True).encode()
    return f"{VIEW_ID_PREFIX}-{hashlib.sha256(body).hexdigest()[:12]}"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # same file system: free, and the drop's files are immutable
    except OSError:
        shutil.copy2(src, dst)


def build_view(drops: Sequence[WindowDrop], raw_dir: Path, out: Path) -> dict[str, Any]:
    """Merge the window's drops (under ``raw_dir``) into the drop-format folder ``out``.

    Written beside ``out`` and swapped in by rename, so a reader sees the old view or the new
    one, never half of one.

    Returns:
        The view's ``drop.json`` (its id, the window's drops, row counts).

    Raises:
        BadInput: the window is empty or a drop of it is not checked out under ``raw_dir``.
    """
    if not drops:
        raise BadInput("no drop ingested yet: nothing to merge (`vsearch ingest DROP`)")
    parts = []
    for d in drops:
        folder = raw_dir / d.drop_id
        if not folder.is_dir():
            raise BadInput(
                f"drop {d.drop_id!r} of the window is not under {raw_dir}: "
                f"`dvc pull {raw_dir / d.drop_id}.dvc` restores it"
            )
        parts.append((d, read_drop_tables(folder, d.kind)))
    merged = merge_drops(parts)
    manifest = {
        "drop_id": view_id(drops),
        "kind": SNAPSHOT,
        "created_at": datetime.now(UTC).isoformat(),
        "window": [d.to_dict() for d in drops],
        "rows": {name: len(frame) for name, frame in merged.items()},
    }

    def write(staging: Path) -> None:
        for contract in (CATALOG, QUERIES, IMPRESSIONS):
            frame = merged[contract.name]
            write_table(frame, contract, staging)
            if "image" in frame.columns:
                for rel in frame["image"].dropna().unique():
                    drop_id, _, path = str(rel).partition("/")
                    why = unsafe_image_path(raw_dir, str(rel)) or unsafe_image_path(
                        raw_dir / drop_id, path
                    )
                    if why is not None:  # ingest refused such paths: a tampered raw drop
                        raise BadInput(f"window: image path {rel!r} refused: {why}")
                    _link(raw_dir / drop_id / path, staging / rel)
        atomic_write_text(staging / DROP_MANIFEST, json.dumps(manifest, indent=2) + "\n")

    _publish(Path(out), write)
    log.info("window %s -> %s: %s", manifest["drop_id"], out, manifest["rows"])
    return manifest


def _publish(out: Path, write: Callable[[Path], None]) -> None:
    """Fill a staging folder beside ``out`` with ``write``, then swap it in by rename, so a
    reader sees the old folder or the new one, never half of one (the old one is put back
    when anything fails)."""
    staging = out.with_name(f".{out.name}.staging")
    old = out.with_name(f".{out.name}.old")
    for leftover in (staging, old):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        write(staging)
        fsync_tree(staging)
        if out.exists():
            out.rename(old)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def merge_truth(drops: Sequence[WindowDrop], truth_dir: Path, out: Path) -> bool:
    """The demo truth of the window's drops (``truth_dir/<drop>``) merged into ``out``.

    Why: the held-out queries are the newest of the *window*, which may reach into older
    drops, and the catalog holds listings of every drop since the latest snapshot, so the
    truth must cover them all. The latest drop's row wins per key, as in the view. Truth
    exists only when every drop of the window has it; otherwise ``out`` holds only the
    no-truth marker (a partial truth would score queries against the wrong products).

    Returns:
        Whether ``out`` holds truth.
    """
    from vsearch.contracts import NO_TRUTH_FILE, TRUTH_TABLES, has_truth

    folders = [truth_dir / d.drop_id for d in drops]
    missing = [d.drop_id for d, f in zip(drops, folders, strict=True) if not has_truth(f)]

    def write(staging: Path) -> None:
        if missing:
            body = {"truth": False, "why": f"no ground truth for drop(s) {missing}"}
            atomic_write_text(staging / NO_TRUTH_FILE, json.dumps(body) + "\n")
            return
        for contract in TRUTH_TABLES:
            frame = pd.concat([read_table(f, contract) for f in folders], ignore_index=True)
            frame = frame.drop_duplicates(contract.key, keep="last").reset_index(drop=True)
            write_table(frame, contract, staging)

    _publish(Path(out), write)
    log.info("window truth -> %s: %s", out, f"none ({missing})" if missing else "merged")
    return not missing


def read_selection(current_file: Path) -> list[WindowDrop]:
    """The window named in ``ingest.current_file`` (written by the ingest's select step).

    A pointer file from before windows existed (only ``drop:``) is a window of that one drop.

    Raises:
        BadInput: the file is missing (no drop ingested yet).
    """
    import yaml

    path = Path(current_file)
    if not path.is_file():
        raise BadInput(f"{path}: no drop selected yet; run `vsearch ingest DROP` or `make demo`")
    body = yaml.safe_load(path.read_text()) or {}
    entries = body.get("window") or ([{"drop": body["drop"]}] if body.get("drop") else [])
    return [WindowDrop.from_dict(e) for e in entries]
