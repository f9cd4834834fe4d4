"""Build a release from an :class:`EmbeddingSet`, and compact a release's change log into a new one.

Why split into plan / build partition / assemble: the partitions are independent, so the
Prefect flow (``flows/indexing.py``) runs each as a task on Dask while the CLI and tests run them
in-process through the same functions (``map_fn`` is injected). Assembling (id map, re-rank
store, manifest, publish) happens once, in the caller.

Internal ids: a release numbers its items partition by partition, and inside a partition in
the order its index stores them (IVF: list by list), so each partition is a contiguous id range
and a probe's re-rank rows sit together on disk.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vsearch.errors import BadInput
from vsearch.index.changeset import ChangeSet
from vsearch.index.embeddings import EmbeddingSet
from vsearch.index.engine import CODES_FILE, ITEMS_FILE, Engine
from vsearch.index.manifest import Manifest, PartitionInfo, SearchDefaults
from vsearch.index.partition import BuiltPartition, build_partition
from vsearch.index.release import (
    LOG_FILE,
    check_version_name,
    clean_stale_staging,
    next_version,
    prune,
    publish,
    resolve,
    set_current,
    staging_dir,
)
from vsearch.index.release_data import ADMIN_DROP, DROP_COLUMN, ReleaseData, has_data
from vsearch.index.rerank_store import QUANT_FILE, ROWS_FILE, Quantizer, RerankStore
from vsearch.index.upsert_log import ChangeLog, copy_records
from vsearch.settings import IndexSettings

log = logging.getLogger(__name__)

QUANTIZER_FIT_SAMPLE = 200_000  # rows used to fit the int8 ranges (quantiles converge early)


@dataclass(frozen=True)
class PartitionJob:
    """One partition to build: its category and the input rows that belong to it."""

    name: str
    slot: int
    rows: np.ndarray
    seed: int


BuildFn = Callable[[PartitionJob], BuiltPartition]
MapFn = Callable[[BuildFn, list[PartitionJob]], list[BuiltPartition]]
PublishHook = Callable[[Path, str], None]


def serial_map(fn: BuildFn, jobs: list[PartitionJob]) -> list[BuiltPartition]:
    """Build partitions one after the other in this process (CLI, tests)."""
    out = []
    for j, job in enumerate(jobs):
        out.append(fn(job))
        log.info(
            "partition %d/%d %r: %d items, %s, %.1fs",
            j + 1,
            len(jobs),
            job.name,
            len(job.rows),
            out[-1].kind,
            out[-1].seconds,
        )
    return out


def plan_partitions(categories: np.ndarray, seed: int = 0) -> list[PartitionJob]:
    """Group rows by category (sorted by name, so a rebuild numbers partitions the same)."""
    names, inverse = np.unique(np.asarray(categories, dtype=str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
    return [
        PartitionJob(str(name), i, order[bounds[i] : bounds[i + 1]].astype(np.int64), seed + i)
        for i, name in enumerate(names)
    ]


def run_job(job: PartitionJob, emb: EmbeddingSet, settings: IndexSettings) -> BuiltPartition:
    """Build one partition from an embeddings set (the body of a flow task)."""
    rows = job.rows
    return build_partition(emb.codes[rows], emb.vectors[rows], settings, seed=job.seed)


def set_threads(threads: int) -> None:
    """faiss's OpenMP threads for this process (builds and benchmarks pin it explicitly)."""
    import faiss

    faiss.omp_set_num_threads(max(1, threads))


def _default_search(settings: IndexSettings) -> SearchDefaults:
    return SearchDefaults(
        rerank_depth=settings.rerank_depth,
        nprobe=settings.ivf_nprobe,
        ef_search=settings.hnsw_ef_search,
        quantizer_ef=settings.ivf_quantizer_ef,
        uncertain_confidence=settings.uncertain_confidence,
        max_extra_categories=settings.max_extra_categories,
        extra_depth=settings.extra_depth,
        source="params",
    )


def assemble(
    emb: EmbeddingSet,
    jobs: list[PartitionJob],
    built: list[BuiltPartition],
    settings: IndexSettings,
    staging: Path,
    version: str,
    quantizer: Quantizer | None = None,
    search: SearchDefaults | None = None,
    extra: dict | None = None,
    data: ReleaseData | None = None,
) -> Manifest:
    """Write partitions, id map, codes and re-rank store into ``staging`` and its manifest.

    Args:
        emb: the items.
        jobs: the partition plan (same order as ``built``).
        built: the built partitions.
        settings: the params recorded in the manifest.
        staging: the staging folder.
        version: the release name.
        quantizer: reuse a re-rank quantiser (compaction keeps the parent's, so unchanged
            items keep identical rows); default: fit one on the data.
        search: search defaults to record (default: from params).
        extra: more manifest fields (``parent``, ``folded``, ``source``, ``timings``).
        data: catalog snapshot, product groups and lineage (already restricted to ``emb``'s
            items), written into the release.
    """
    t0 = time.perf_counter()
    perm = np.concatenate([job.rows[b.order] for job, b in zip(jobs, built, strict=True)])
    infos, files, first = [], [], 0
    for job, b in zip(jobs, built, strict=True):
        rel = f"partitions/p{job.slot:03d}"
        written = b.save(staging / rel, job.name, first)
        files += [str(p.relative_to(staging)) for p in written]
        size = len(b.binary) + (0 if b.quantizer is None else len(b.quantizer))
        infos.append(PartitionInfo(job.name, rel, b.kind, first, len(b.order), b.seconds, size))
        first += len(b.order)
    ids = np.char.encode(emb.item_ids[perm].astype(str), "utf-8")
    np.save(staging / ITEMS_FILE, ids)
    np.save(staging / CODES_FILE, emb.codes[perm])
    # The store keeps residuals: item minus its reference (list centroid or partition mean).
    refs = np.concatenate([b.refs for b in built])
    bases = np.cumsum([0] + [len(b.refs) for b in built[:-1]])
    row_ref = np.concatenate([b.item_lists + base for b, base in zip(built, bases, strict=True)])
    rows = _Residuals(emb.vectors, perm, refs, row_ref)
    if quantizer is None:
        sample = np.arange(len(rows))
        if len(sample) > QUANTIZER_FIT_SAMPLE:
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(len(sample), QUANTIZER_FIT_SAMPLE, replace=False))
        quantizer = Quantizer.fit(
            rows.take(sample), settings.rerank_dtype, settings.rerank_clip_quantile
        )
    RerankStore.write(staging, quantizer, rows)
    files += [ITEMS_FILE, CODES_FILE, ROWS_FILE, QUANT_FILE]
    extra = dict(extra or {})
    if data is not None:
        files += data.write(staging)
        extra["data"] = data.summary()
        extra["lineage"] = data.lineage
    timings = dict(extra.pop("timings", {}))
    timings["assemble_s"] = round(time.perf_counter() - t0, 3)
    manifest = Manifest(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        model=emb.model,
        bits=emb.bits,
        dim=emb.dim,
        n_items=len(emb),
        partitions=infos,
        store={"kind": quantizer.kind, "bytes": int(len(emb) * emb.dim * quantizer.dtype.itemsize)},
        params=settings.model_dump(mode="json"),
        search=search or _default_search(settings),
        timings=timings,
        **extra,
    )
    manifest.checksum_files(staging, files)
    return manifest


class _Residuals:
    """``vectors[perm] - refs[row_ref]`` computed chunk by chunk (no copy of a large catalog)."""

    def __init__(
        self, vectors: np.ndarray, perm: np.ndarray, refs: np.ndarray, row_ref: np.ndarray
    ) -> None:
        self.vectors, self.perm, self.refs, self.row_ref = vectors, perm, refs, row_ref

    def __len__(self) -> int:
        return len(self.perm)

    def take(self, rows: np.ndarray) -> np.ndarray:
        x = np.asarray(self.vectors[self.perm[rows]], dtype=np.float32)
        return x - self.refs[self.row_ref[rows]]

    def __getitem__(self, sl: slice) -> np.ndarray:
        return self.take(np.arange(len(self.perm))[sl])


def build_release(
    emb: EmbeddingSet,
    settings: IndexSettings,
    indexes_dir: str | Path,
    version: str | None = None,
    map_fn: MapFn = serial_map,
    build_fn: BuildFn | None = None,
    threads: int = 1,
    activate: bool = True,
    keep: int | None = None,
    quantizer: Quantizer | None = None,
    search: SearchDefaults | None = None,
    extra: dict | None = None,
    publish_hook: PublishHook | None = None,
    data: ReleaseData | None = None,
    require_catalog_rows: bool = True,
) -> Manifest:
    """Build, publish and (by default) activate a release of ``emb``.

    A failure or a kill at any point before the final rename leaves ``CURRENT`` and all
    published releases untouched (the staging folder is removed now or by the next build).

    Args:
        emb: the items to index.
        settings: index params.
        indexes_dir: where releases live.
        version: release name (default: the next ``vNNNN``).
        map_fn: runs ``build_fn`` over the partition jobs (serial, or Dask via the flow).
        build_fn: builds one partition (default: :func:`run_job` on ``emb``).
        threads: faiss threads in this process.
        activate: point ``CURRENT`` at the new release.
        keep: releases to keep (default ``settings.keep_releases``).
        quantizer, search, extra: see :func:`assemble`.
        publish_hook: replaces "publish, then set CURRENT" (compaction seals the old log
            between the two).
        data: the catalog, product groups and lineage the release carries (the service reads
            the catalog and groups only from the release); ``None`` for a bare index (scratch
            releases of the evaluation, benchmarks), which the service refuses to serve.
        require_catalog_rows: refuse items without a catalog row in ``data`` (see
            :meth:`~vsearch.index.release_data.ReleaseData.restricted_to`).
    """
    t0 = time.perf_counter()
    indexes_dir = Path(indexes_dir)
    if len(emb) == 0:
        raise BadInput("no items to index: the embeddings set is empty")
    if emb.bits != settings.bits:
        raise BadInput(
            f"the embeddings have {emb.bits}-bit codes but params index.bits is {settings.bits}: "
            "fix params.yaml or re-export the embeddings"
        )
    if data is not None:  # checked before any work: every indexed item needs its listing
        data = data.restricted_to(emb.item_ids, emb.categories, require_catalog_rows)
    clean_stale_staging(indexes_dir)  # before numbering: a dead build's folder frees its name
    version = check_version_name(version) if version else next_version(indexes_dir)
    staging = staging_dir(indexes_dir, version)
    try:
        set_threads(threads)
        jobs = plan_partitions(emb.categories)
        log.info("building release %s: %d items, %d partitions", version, len(emb), len(jobs))
        build = build_fn or (lambda job: run_job(job, emb, settings))
        built = map_fn(build, jobs)
        parts_s = time.perf_counter() - t0
        extra = dict(extra or {})
        timings = dict(extra.pop("timings", {}))
        timings["partitions_s"] = round(parts_s, 3)
        extra["timings"] = timings
        manifest = assemble(
            emb, jobs, built, settings, staging, version, quantizer, search, extra, data
        )
        manifest.timings["total_s"] = round(time.perf_counter() - t0, 3)
        manifest.write(staging)
        if publish_hook is not None:
            publish_hook(staging, version)
        else:
            publish(staging, indexes_dir, version)
            if activate:
                set_current(indexes_dir, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    prune(indexes_dir, keep or settings.keep_releases)
    log.info("release %s ready in %.1fs", version, time.perf_counter() - t0)
    return manifest


def compact(
    indexes_dir: str | Path,
    settings: IndexSettings,
    version: str | None = None,
    map_fn: MapFn = serial_map,
    threads: int = 1,
    source: EmbeddingSet | None = None,
    changes: ChangeSet | None = None,
) -> Manifest:
    """Fold ``CURRENT``'s change log into a new release and make it ``CURRENT``.

    Writes keep flowing during the rebuild: records appended meanwhile are copied into the new
    release's log under the log's lock, then the old log is sealed (writers holding the old
    release get :class:`~vsearch.index.engine.StaleRelease` and reopen), then ``CURRENT`` moves.

    Args:
        indexes_dir: where releases live.
        settings: index params (partition kinds, sizes).
        version: the new release's name (default: next ``vNNNN``).
        map_fn, threads: see :func:`build_release`.
        source: the embeddings the release was built from (same model fingerprint): their
            exact float vectors are used for the release's items. Without it (or if it does
            not cover them) vectors are decoded from the re-rank store (reference + residual,
            within one int8 step), which drifts slightly with each compaction.
        changes: the project's change set: the listing fields of admin upserts the log holds
            go into the new release's catalog (the parent's catalog and groups are carried).
    """
    t0 = time.perf_counter()
    indexes_dir = Path(indexes_dir)
    folder = resolve(indexes_dir)
    engine = Engine.open(folder, verify=settings.verify_checksums, writable=True)
    try:
        folded_seq = engine.log.last_seq
        live = engine.export(_source_rows(engine, source))
        parent = engine.manifest

        def publish_hook(staging: Path, new_version: str) -> None:
            with engine.log.locked():
                tail = [c for c in engine.log.read_new(repair=True) if c.op in ("upsert", "delete")]
                with ChangeLog(staging / LOG_FILE) as new_log:
                    copy_records(tail, new_log)
                publish(staging, indexes_dir, new_version)
                engine.log.append_marker("seal", new_version)
                set_current(indexes_dir, new_version)
            log.info("compaction: %d writes arrived during the rebuild, carried over", len(tail))

        search = SearchDefaults(
            **{**parent.search.__dict__, "source": f"inherited:{parent.version}"}
        )
        data = _compacted_data(folder, parent, engine.changeset_seq, changes)
        extra = {
            "parent": parent.version,
            "folded": {"from": parent.version, "seq": folded_seq},
            "source": parent.source,
            "tune": parent.tune,
            "timings": {"export_s": round(time.perf_counter() - t0, 3)},
        }
        return build_release(
            live,
            settings,
            indexes_dir,
            version=version,
            map_fn=map_fn,
            threads=threads,
            quantizer=engine.store.quantizer,
            search=search,
            extra=extra,
            publish_hook=publish_hook,
            data=data,
            require_catalog_rows=False,  # `vsearch index upsert` writes carry no listing fields
        )
    finally:
        engine.close()


def _compacted_data(
    folder: Path, parent: Manifest, folded_seq: int, changes: ChangeSet | None
) -> ReleaseData | None:
    """The parent's catalog and groups with the admin changes its log holds applied."""
    import pandas as pd

    if not has_data(parent):
        log.warning(
            "compaction: release %s carries no catalog; neither will the new one", parent.version
        )
        return None
    lineage = dict(parent.lineage or {})
    before = int((lineage.get("changes") or {}).get("seq", 0))
    catalog = pd.read_parquet(folder / parent.data["catalog"])
    groups = pd.read_parquet(folder / parent.data["groups"])
    seq = max(before, folded_seq)
    if changes is not None and seq > before:
        latest = changes.latest(after=before, upto=seq)
        touched = {c.item_id for c in latest}
        catalog = catalog[~catalog["item_id"].astype(str).isin(touched)]
        rows = changes.rows(after=before, upto=seq)
        if len(rows):
            rows[DROP_COLUMN] = ADMIN_DROP
            catalog = pd.concat([catalog, rows], ignore_index=True)
        ups = sum(c.op == "upsert" for c in latest)
        lineage["changes"] = {"seq": seq, "upserts": ups, "deletes": len(latest) - ups}
    lineage["compacted_from"] = parent.version
    return ReleaseData(catalog, groups, lineage)


class _ByInternalId:
    """``source.vectors`` indexed by the release's internal ids."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        self.vectors, self.rows = vectors, rows

    def __getitem__(self, internal: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[self.rows[internal]], dtype=np.float32)


def _source_rows(engine: Engine, source: EmbeddingSet | None) -> _ByInternalId | None:
    """Map the release's items to rows of ``source`` (None if it cannot serve all of them)."""
    if source is None:
        return None
    if source.model.fingerprint != engine.manifest.model.fingerprint:
        log.warning("compaction: source embeddings are from another model; decoding the store")
        return None
    row_of = {item: i for i, item in enumerate(source.item_ids.tolist())}
    ids = engine._decode_ids(np.arange(engine.n_base, dtype=np.int64))
    rows = np.fromiter((row_of.get(x, -1) for x in ids), dtype=np.int64, count=len(ids))
    if (rows < 0).any():
        log.warning(
            "compaction: %d items missing from the source; decoding the store",
            int((rows < 0).sum()),
        )
        return None
    return _ByInternalId(source.vectors, rows)


def rollback(indexes_dir: str | Path, to: str | None = None) -> str:
    """Point ``CURRENT`` back at ``to`` (default: the release before it); returns the version.

    The target's change log is re-opened (unsealed) so it accepts writes again; writes made to
    newer releases since are not carried back (they stay in those releases' logs).
    """
    from vsearch.index.release import current_version, previous_version

    indexes_dir = Path(indexes_dir)
    target = check_version_name(to) if to else previous_version(indexes_dir)
    folder = resolve(indexes_dir, target)
    if target == current_version(indexes_dir):
        return target
    with ChangeLog(folder / LOG_FILE) as change_log, change_log.locked():
        if any(c.op == "seal" for c in change_log.read_new(repair=True)):
            change_log.append_marker("unseal", None)
        set_current(indexes_dir, target)
    return target
