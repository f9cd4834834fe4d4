"""What the service serves: one (pipeline, release, model) behind one reference, hot-swapped.

Why this shape (docs/operations.md#tool-behaviour-we-rely-on: BentoML has no model/index hot swap):
a reload builds a complete new :class:`Served` (model loaded, release opened and its fingerprint
checked against the model, catalog read, one smoke search) *beside* the one serving, then replaces
the reference in one assignment. A request takes a lease on whatever is current when it starts and
finishes on it; the old pipeline is closed when its last lease ends. A reload that fails at any step
raises :class:`ReloadRefused` and leaves the old one serving untouched.

Which model: the registry's ``serving.model_alias`` (``champion``) when MLflow is configured
(``serving.model_source``), resolved to a version at load time and downloaded into
``serving.model_cache_dir``; otherwise ``serving.model_dir``, or the model folder beside the
release's embeddings (``<run>/embeddings`` → ``<run>/model``) when only that one matches the
release's fingerprint. The engine refuses a release built by another model either way.

What the results show comes only from the release served: its catalog snapshot and product
groups (``catalog.parquet``, ``groups.parquet``: :mod:`vsearch.index.release_data`), plus the
admin changes made after it was built (the project's change set,
:mod:`vsearch.index.changeset`). Nothing is read from ``data/current.yaml`` or ``runs/mining``,
so a restart, a reload or a rollback always pairs an index with its own catalog. A release built
before releases carried their catalog is refused with the way out (rebuild it): serving it with
today's catalog is the very mismatch this prevents.

Admin writes (:meth:`ServingState.upsert`, :meth:`ServingState.delete`) are recorded in the
change set first, then applied to the serving release with the change's sequence number; a
loaded release applies the changes it does not hold yet (photos re-encoded by the served model).
Writes and reloads are serialised by one lock, so a write always lands in the release that
serves after it. A write that finds its release sealed by a compaction
(:class:`~vsearch.index.engine.StaleRelease`: ``vsearch index compact`` folded it into a new
release) reopens ``CURRENT``, whose load applies the change just recorded, and succeeds.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vsearch.errors import BadInput
from vsearch.index.embeddings import EmbeddingSet, ModelInfo
from vsearch.index.engine import Engine, StaleRelease
from vsearch.index.manifest import Manifest
from vsearch.index.release import current_version, resolve
from vsearch.index.release_data import lineage_of, read_catalog, require_data
from vsearch.search.pipeline import CATALOG_FIELDS, CATALOG_OPTIONAL_FIELDS
from vsearch.serving import heap
from vsearch.serving.admin_store import AdminStore
from vsearch.settings import Settings

log = logging.getLogger(__name__)

MODEL_META = "model.json"  # vsearch.model.export.META_FILE (read without importing torch code)
SIBLING_MODEL_DIR = "model"  # training writes <run>/model next to <run>/embeddings
# what results show and filters read (optional ones kept when present); the admin store keeps
# the same
CATALOG_COLUMNS = [*CATALOG_FIELDS, *CATALOG_OPTIONAL_FIELDS]


class ReloadRefused(BadInput):
    """A release/model could not be loaded; whatever served before still serves."""


class NotLoaded(BadInput):
    """Nothing is loaded yet (no release, or the first load failed)."""


@dataclass
class Served:
    """One loaded pipeline and what it is: the unit the service swaps."""

    pipeline: Any  # vsearch.search.pipeline.SearchPipeline
    release: str
    model: dict[str, Any]
    drops: list[Path]  # folders of the release's drops, newest last (their photos)
    loaded_at: str
    load_s: float
    changes_applied: int = 0  # admin changes newer than the release, applied at load
    _leases: int = 0
    _retired: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> dict[str, Any]:
        engine = self.pipeline.engine
        manifest = engine.manifest
        return {
            "release": self.release,
            "model": self.model,
            "lineage": lineage_of(manifest),
            "catalog_rows": (manifest.data or {}).get("catalog_rows"),
            "admin_changes": {
                "in_release": int(((manifest.lineage or {}).get("changes") or {}).get("seq", 0)),
                "applied_up_to": engine.changeset_seq,
                "applied_at_load": self.changes_applied,
            },
            "loaded_at": self.loaded_at,
            "load_s": round(self.load_s, 3),
            "items": len(engine),
            "categories": sorted(engine.categories),
        }

    def _acquire(self) -> None:
        with self._lock:
            self._leases += 1

    def _release(self) -> None:
        with self._lock:
            self._leases -= 1
            done = self._retired and self._leases == 0
        if done:
            self._close()

    def retire(self) -> None:
        """No new leases reach this one (it was swapped out); close it when the last ends."""
        with self._lock:
            self._retired = True
            done = self._leases == 0
        if done:
            self._close()

    def _close(self) -> None:
        log.info("closing release %s (retired, no request in flight)", self.release)
        self.pipeline.close()


def _read_fingerprint(model_dir: Path) -> str | None:
    try:
        return str(json.loads((model_dir / MODEL_META).read_text()).get("fingerprint"))
    except (OSError, ValueError):
        return None


def mlflow_configured(settings: Settings) -> bool:
    """True when a tracking server is named (environment or params), not just defaulted."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI") or settings.services.mlflow.tracking_uri)


class ServingState:
    """The current :class:`Served` (or none), with reload, leases and admin writes.

    Args:
        settings: all settings.
        root: the project root relative paths in settings resolve against.
    """

    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self._current: Served | None = None
        self._swap = threading.Lock()  # guards the reference and lease taking
        self._writes = threading.Lock()  # one reload or admin write at a time
        self.last_error: str | None = None
        self.admin = AdminStore(self.abs(settings.serving.admin_dir))

    def abs(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    @property
    def indexes_dir(self) -> Path:
        return self.abs(self.settings.project.indexes_dir)

    # -- reading -----------------------------------------------------------------------------

    @property
    def current(self) -> Served | None:
        return self._current

    @contextmanager
    def lease(self) -> Iterator[Served]:
        """The current pipeline, kept open until the block ends (even across a swap).

        Raises:
            NotLoaded: nothing to serve yet (the message says why and what to do).
        """
        with self._swap:
            served = self._current
            if served is None:
                raise NotLoaded(self.not_loaded_message())
            served._acquire()
        try:
            yield served
        finally:
            served._release()

    def not_loaded_message(self) -> str:
        """Why nothing serves, as public answers say it: no path, no error text from inside
        (those are in :meth:`not_loaded_detail`, for the admin view of ``/info``)."""
        why = " (the last load failed; the admin view of /info says why)" if self.last_error else ""
        return (
            f"no index release is loaded{why}: build one (`vsearch index build` or the nightly "
            "flow), then POST /admin/reload"
        )

    def not_loaded_detail(self) -> str:
        """Why nothing serves, with the last load's error (paths and all): admins only."""
        why = f" ({self.last_error})" if self.last_error else ""
        return (
            f"no index release is loaded{why}: build one (`vsearch index build` or the nightly "
            "flow), then POST /admin/reload"
        )

    # -- drops and model -----------------------------------------------------------------------

    def release_drops(self, manifest: Manifest) -> list[Path]:
        """The folders of the drops a release was built from, oldest first: the versioned copy
        under ``ingest.raw_dir`` when it is there, else the path recorded at build time.

        A release built from the merged window (``vsearch window``) names the ingested drops
        it merged: those are its folders, so its photos outlive the window view, which the
        next night rewrites (the view is the fallback when a drop is not under ``raw_dir``).
        """
        out = []
        raw = self.abs(self.settings.ingest.raw_dir)
        for drop in (manifest.lineage or {}).get("drops", []):
            window = drop.get("window")  # a merged view's drops (a demo drop's is its dates)
            entries = window if isinstance(window, list) else []
            merged = [raw / str(w["drop"]) for w in entries if isinstance(w, dict) and "drop" in w]
            if merged and all(m.is_dir() for m in merged):
                out.extend(merged)
                continue
            for cand in (raw / str(drop.get("drop_id", "")), Path(str(drop.get("path") or ""))):
                if str(cand) not in ("", ".") and cand.is_dir():
                    out.append(cand)
                    break
            else:
                log.warning("release %s: drop %s not found", manifest.version, drop)
        return out

    def drop_dir(self) -> Path:
        """The newest drop of the served release (held-out sample photos come from it)."""
        served = self._current
        if served is None or not served.drops:
            raise BadInput("no drop: the served release names none (or nothing is served)")
        return served.drops[-1]

    def drop_image(self, rel: str) -> Path | None:
        """The photo ``images/<rel>`` of the served release's drops (newest drop first), or
        ``None``; never a path outside a drop's ``images/`` folder.

        A merged window's catalog names its photos ``<drop_id>/images/<path>`` (URL
        ``/images/<drop_id>/<path>``): a leading drop id of the release picks that drop.
        """
        served = self._current
        drops = list(reversed(served.drops if served else []))
        head, _, rest = rel.partition("/")
        named = [(d, rest) for d in drops if rest and d.name == head]
        for drop, sub in [*named, *((d, rel) for d in drops)]:
            base = (drop / "images").resolve()
            path = (base / sub).resolve()
            if path.is_relative_to(base) and path.is_file():
                return path
        return None

    def _registry_model(self) -> tuple[Path, dict[str, Any]]:
        from vsearch.registry.registry import ModelRegistry

        s = self.settings.serving
        registry = ModelRegistry.from_settings(self.settings)
        info = registry.get_version(s.model_alias)
        dest = self.abs(s.model_cache_dir) / f"{info.name}-v{info.version}"
        if info.fingerprint is None or _read_fingerprint(dest) != info.fingerprint:
            registry.download_model(info.version, dest)
        meta = {
            "source": "registry",
            "name": info.name,
            "version": info.version,
            "alias": s.model_alias,
            "uri": info.uri,
        }
        return dest, meta

    def _path_model(self, manifest: Manifest) -> tuple[Path, dict[str, Any]]:
        """``serving.model_dir``, or the release's sibling model folder if only it matches."""
        configured = self.abs(self.settings.serving.model_dir)
        want = manifest.model.fingerprint
        candidates = [configured]
        if manifest.source:
            candidates.append(Path(manifest.source).parent / SIBLING_MODEL_DIR)
        chosen = next((c for c in candidates if _read_fingerprint(c) == want), configured)
        meta = {"source": "path", "path": str(chosen)}
        return chosen, meta

    def resolve_model(self, manifest: Manifest) -> tuple[Path, dict[str, Any]]:
        """The model folder to serve with ``manifest``'s release, and how it was chosen."""
        source = self.settings.serving.model_source
        if source == "registry" or (source == "auto" and mlflow_configured(self.settings)):
            try:
                return self._registry_model()
            except BadInput as exc:
                if source == "registry":
                    raise
                path, meta = self._path_model(manifest)
                meta["registry_error"] = str(exc)
                log.warning("registry unavailable (%s); serving the model folder %s", exc, path)
                return path, meta
        return self._path_model(manifest)

    # -- loading -------------------------------------------------------------------------------

    def _catalog(self, engine: Engine, pending: list[Any]) -> pd.DataFrame:
        """The release's catalog and groups, with admin changes newer than the release."""
        from vsearch.search.changes import change_rows

        catalog = read_catalog(engine.folder, engine.manifest)
        if pending:
            touched = {c.item_id for c in pending}
            catalog = catalog[~catalog["item_id"].astype(str).isin(touched)]
            rows = change_rows(pending)
            if len(rows):
                catalog = pd.concat([catalog, rows], ignore_index=True)
        return catalog

    def _catch_up(self, pipeline: Any, pending: list[Any]) -> int:
        """Apply to the release the admin changes its log does not hold yet (photos encoded by
        the served model); returns how many. Deletes first, then upserts carrying the newest
        sequence number: a crash in between only repeats idempotent work next time."""
        from vsearch.search.changes import upserts_as_embeddings

        engine = pipeline.engine
        todo = [c for c in pending if c.seq > engine.changeset_seq]
        if not todo:
            return 0
        last = max(c.seq for c in todo)
        deletes = [c.item_id for c in todo if c.op == "delete"]
        ups = upserts_as_embeddings(
            todo, pipeline.encoder, self.settings.search, pipeline.input_size
        )
        if deletes:
            engine.delete(deletes, ref=None if len(ups) else last)
        if len(ups):
            engine.upsert(ups, ref=last)
        log.info(
            "release %s: applied %d admin changes made after it was built (up to #%d)",
            engine.version,
            len(todo),
            last,
        )
        return len(todo)

    def _build(self) -> Served:
        from vsearch.search.encoder import NetEncoder
        from vsearch.search.pipeline import SearchPipeline

        t0 = time.perf_counter()
        s = self.settings
        manifest = Manifest.read(resolve(self.indexes_dir))
        require_data(manifest)  # refuse a release without its catalog before any work
        model_dir, model_meta = self.resolve_model(manifest)
        if not model_dir.is_dir():
            raise BadInput(
                f"model folder {model_dir} does not exist: train one (`vsearch train`), set "
                "serving.model_dir, or register a champion in MLflow"
            )
        try:
            encoder = NetEncoder.load(model_dir, s.project.device, batch_size=s.search.encode_batch)
        except ValueError as exc:
            raise BadInput(f"model {model_dir}: {exc}") from None
        engine = Engine.open_current(
            self.indexes_dir, s.index, expected_model=encoder.fingerprint, writable=True
        )
        try:
            folded = int(((engine.manifest.lineage or {}).get("changes") or {}).get("seq", 0))
            pending = self.admin.changes.latest(after=folded)
            pipeline = SearchPipeline(encoder, engine, self._catalog(engine, pending), s)
            applied = self._catch_up(pipeline, pending)
            self._smoke(pipeline)
        except BaseException:
            engine.close()
            raise
        model_meta.update(
            fingerprint=encoder.fingerprint,
            name=model_meta.get("name", getattr(encoder, "name", "")),
            version=model_meta.get("version", getattr(encoder, "version", "")),
        )
        return Served(
            pipeline=pipeline,
            release=engine.version,
            model=model_meta,
            drops=self.release_drops(engine.manifest),
            changes_applied=applied,
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            load_s=time.perf_counter() - t0,
        )

    @staticmethod
    def _smoke(pipeline: Any) -> None:
        """One search of a blank photo: a release that cannot answer is never swapped in."""
        side = pipeline.input_size
        with torch.inference_mode():
            pipeline.search_images(torch.zeros((1, 3, side, side), dtype=torch.uint8), k=1)

    def reload(self) -> Served:
        """Load ``indexes/CURRENT`` with the configured model and swap it in.

        Raises:
            ReloadRefused: the release or model could not be loaded (fingerprint mismatch,
                damaged files, no release, no model); the previous pipeline keeps serving.
        """
        with self._writes:
            return self._reload_locked()

    def _reload_locked(self) -> Served:
        """:meth:`reload` with the write lock already held (an admin write that found its
        release sealed by a compaction reopens ``CURRENT`` this way, then carries on)."""
        try:
            new = self._build()
        except BadInput as exc:  # ReleaseError, FingerprintMismatch, missing model, ...
            self._refused(str(exc))
            raise ReloadRefused(str(exc)) from None
        except Exception as exc:  # any other failure to load is a refusal too
            log.exception("reload failed")
            self._refused(f"{type(exc).__name__}: {exc}")
            raise ReloadRefused(f"{type(exc).__name__}: {exc}") from None
        with self._swap:
            old, self._current = self._current, new
        self.last_error = None
        log.info(
            "serving release %s with model %s (%.1fs); previous %s",
            new.release,
            str(new.model.get("fingerprint"))[:12],
            new.load_s,
            old.release if old else None,
        )
        if old is not None:
            old.retire()
        if self.settings.serving.freeze_heap:
            heap.settle()
        return new

    def _refused(self, reason: str) -> None:
        serving = self._current.release if self._current else None
        log.warning("reload refused (still serving %s): %s", serving, reason)
        if self._current is None:
            self.last_error = reason

    def try_initial_load(self) -> None:
        """Load at start-up if a release exists; otherwise start empty and say why."""
        if current_version(self.indexes_dir) is None:
            self.last_error = f"no release under {self.indexes_dir} (CURRENT missing)"
            log.warning("starting without a release: %s", self.last_error)
            return
        try:
            self.reload()
        except ReloadRefused as exc:
            log.warning("starting without a release: %s", exc)

    def close(self) -> None:
        with self._swap:
            old, self._current = self._current, None
        if old is not None:
            old.retire()

    # -- admin writes --------------------------------------------------------------------------

    def upsert(
        self, row: dict[str, Any], photo: bytes, box: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Encode an uploaded photo with the served model and upsert the listing durably.

        Args:
            row: catalog fields (item_id, category, seller_id, title, price, quality, sales).
            photo: the image bytes (checked like a search upload).
            box: normalised xyxy of the product, else detected.

        Raises:
            BadInput: bad photo, unknown category, or nothing loaded.
        """
        from PIL import Image

        from vsearch.search.changes import encode_photos

        with self._writes, self.lease() as served:
            pipeline = served.pipeline
            category = pipeline.check_category(row["category"])
            pipeline.decode(photo)  # the checks of a search upload, before anything is stored
            box_list = None if box is None else [float(x) for x in np.ravel(box)]
            enc = encode_photos(
                pipeline.encoder, [photo], [box_list], self.settings.search, pipeline.input_size
            )
            with Image.open(io.BytesIO(photo)) as img:  # decoded above: the format is known
                fmt = img.format or ""
            # The change set first (durable, with the photo), then the serving release.
            change, stored = self.admin.add({**row, "category": category}, photo, fmt, box_list)
            model = served.pipeline.engine.manifest.model
            items = EmbeddingSet(
                np.asarray([row["item_id"]], dtype=object),
                np.asarray([category], dtype=object),
                enc.codes,
                enc.embeddings,
                ModelInfo(model.name, model.version, model.fingerprint),
            )
            out = {
                "item_id": row["item_id"],
                "category": category,
                "box": [float(x) for x in enc.boxes[0]],
                "image": stored["image"],
                "change": change,
            }
            try:
                seq = pipeline.engine.upsert(items, ref=change)
            except StaleRelease:
                # A compaction sealed the served release: reopen CURRENT, whose load applies
                # this change (recorded above, newer than anything the new release holds).
                fresh = self._reopen_sealed(served)
                return {**out, "release": fresh.release, "seq": fresh.pipeline.engine.log.last_seq}
            pipeline.update_catalog(pd.DataFrame([stored]).reindex(columns=CATALOG_COLUMNS))
            return {**out, "release": served.release, "seq": seq}

    def _reopen_sealed(self, served: Served) -> Served:
        """The served release was compacted into a newer one: load ``CURRENT`` (write lock
        held), so admin writes keep working after ``vsearch index compact``."""
        log.info(
            "release %s was compacted into %s: reopening CURRENT for admin writes",
            served.release,
            served.pipeline.engine.sealed_into,
        )
        return self._reload_locked()

    def delete(self, item_id: str) -> int:
        """Tombstone a listing durably; returns how many live items were deleted (0 or 1).

        Recorded in the change set first, so the next release keeps it deleted.
        """
        with self._writes, self.lease() as served:
            engine = served.pipeline.engine
            engine.sync()  # writes of the other workers (and a compaction's seal) first
            if engine.lookup([item_id])[0] < 0:
                return 0
            change = self.admin.delete(item_id)
            try:
                return engine.delete([item_id], ref=change)
            except StaleRelease:  # the reopened release's load applies the recorded delete
                self._reopen_sealed(served)
                return 1
