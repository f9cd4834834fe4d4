"""``vsearch index ...``: build, tune, inspect, compact and roll back index releases.

Why thin: each command loads settings once, calls one library function of
:mod:`vsearch.index` and prints its result (``--json`` for scripts). Releases live under
``project.indexes_dir``. Bad input (a missing embeddings folder, a damaged release, a model
mismatch) exits with code 2 and says what to do; anything else is a bug (exit 1).
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded
from vsearch.errors import BadInput

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Binary index releases: build | tune | info | compact | rollback | upsert | delete.",
    no_args_is_help=True,
    add_completion=False,
)

JSON_OPT = typer.Option(False, "--json", help="machine-readable output on stdout")
VERSION_OPT = typer.Option(None, "--version", help="release version (default: CURRENT)")


def _threads() -> int:
    s = get_settings()
    return s.index.build_threads or s.project.threads


def _indexes_dir() -> Path:
    return get_settings().project.indexes_dir


def _change_set():  # -> ChangeSet
    from vsearch.index.changeset import ChangeSet

    return ChangeSet.in_folder(get_settings().serving.admin_dir)


def _load_embeddings(folder: Path):  # -> EmbeddingSet
    from vsearch.index.embeddings import EmbeddingSet

    if not folder.is_dir():
        raise BadInput(f"embeddings folder not found: {folder}")
    try:
        return EmbeddingSet.load(folder, mmap=True)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _summary(manifest) -> dict:  # manifest: Manifest
    from vsearch.index.release_data import lineage_of

    return {
        "version": manifest.version,
        "created_at": manifest.created_at,
        "model": manifest.model.to_dict(),
        "items": manifest.n_items,
        "bits": manifest.bits,
        "dim": manifest.dim,
        "partitions": {p.name: {"kind": p.kind, "items": p.n} for p in manifest.partitions},
        "store": manifest.store,
        "search": manifest.search.__dict__,
        "timings": manifest.timings,
        "parent": manifest.parent,
        "folded": manifest.folded,
        "data": manifest.data,
        "lineage": lineage_of(manifest),
    }


def _release_data(drops: list[Path], embeddings: Path, catalog: bool):  # -> ReleaseData | None
    """The catalog, groups and lineage of a release built from ``embeddings``: ``--drop``
    folders, else the drop ``ingest.current_file`` selects; ``None`` with ``--no-catalog``."""
    if not catalog:
        log.warning("building without a catalog: the service will refuse this release")
        return None
    from vsearch.data import dvc
    from vsearch.index.release_data import mlflow_lineage, release_data_for

    settings = get_settings()
    root = Path.cwd()
    if not drops:
        from vsearch.data.ingest import current_drop, resolve_paths

        drops = [resolve_paths(settings, root)["raw"] / current_drop(settings, root)]
        log.info("catalog from the selected drop %s", drops[0])
    for d in drops:
        if not d.is_dir():
            raise BadInput(f"--drop {d}: not a folder")

    def dvc_hash(drop: Path) -> str | None:
        try:
            return dvc.content_hash(drop)
        except dvc.DvcError:
            return None

    run = embeddings.resolve().parent  # a training run: RUN/embeddings beside RUN/mlflow_run.json
    mining = settings.search.product_groups_dir
    return release_data_for(drops, mining, mlflow_lineage(run), dvc_hash)


@app.command()
def build(
    embeddings: Path = typer.Option(..., "--embeddings", help="EmbeddingSet folder to index"),
    version: str | None = typer.Option(None, "--version", help="release name (default vNNNN)"),
    activate: bool = typer.Option(True, "--activate/--no-activate", help="point CURRENT at it"),
    drops: list[Path] = typer.Option(
        [],
        "--drop",
        help="drop folder whose catalog the release carries, oldest first "
        "(repeat for a window; default: the drop ingest.current_file selects)",
    ),
    catalog: bool = typer.Option(
        True, "--catalog/--no-catalog", help="carry catalog + groups (the service needs them)"
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Build a release from an embeddings folder and (by default) make it CURRENT."""

    def body() -> None:
        from vsearch.index.builder import build_release

        settings = get_settings()
        emb = _load_embeddings(embeddings)
        data = _release_data(drops, embeddings, catalog)
        manifest = build_release(
            emb,
            settings.index,
            _indexes_dir(),
            version=version,
            threads=_threads(),
            activate=activate,
            extra={"source": str(embeddings.resolve())},
            data=data,
        )
        emit(_summary(manifest), as_json)

    run_guarded(body)


@app.command()
def tune(
    version: str | None = VERSION_OPT,
    queries: Path | None = typer.Option(
        None, "--queries", help="EmbeddingSet of tuning queries (category = partition to search)"
    ),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", help="exact float catalog (default: the build's source, if present)"
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Measure recall vs exact search; store the cheapest depth/nprobe/ef meeting the target."""

    def body() -> None:
        from vsearch.index.manifest import Manifest
        from vsearch.index.release import resolve
        from vsearch.index.tune import TuneQueries, tune_release

        settings = get_settings()
        folder = resolve(_indexes_dir(), version)
        manifest = Manifest.read(folder)
        source = embeddings or (Path(manifest.source) if manifest.source else None)
        catalog = _load_embeddings(source) if source and source.is_dir() else None
        tq = None
        if queries is not None:
            q = _load_embeddings(queries)
            tq = TuneQueries(q.codes, q.vectors, [[c] for c in q.categories])
        result = tune_release(folder, settings.index, catalog=catalog, queries=tq)
        emit(result.to_json(), as_json)
        if not result.met_target:
            raise BadInput(
                f"no setting in the params grid reached recall {settings.index.target_recall}; "
                "widen index.tune_depths / tune_nprobes / tune_efs or lower target_recall"
            )

    run_guarded(body)


@app.command()
def info(
    version: str | None = VERSION_OPT,
    verify: bool = typer.Option(False, "--verify", help="check every file's sha256"),
    as_json: bool = JSON_OPT,
) -> None:
    """Show a release (default CURRENT), the releases kept, and live changes."""

    def body() -> None:
        from vsearch.index.engine import Engine
        from vsearch.index.release import current_version, list_versions, open_manifest, resolve

        root = _indexes_dir()
        folder = resolve(root, version)
        manifest = open_manifest(folder, verify=verify)
        out = _summary(manifest)
        out["current"] = current_version(root)
        out["releases"] = list_versions(root)
        out["verified"] = verify
        with Engine.open(folder, verify=False, writable=False) as engine:
            out["live"] = {
                "items": len(engine),
                "log_records": engine.log.last_seq if engine.log else 0,
                "sealed_into": engine.sealed_into,
                "partitions": engine.partition_sizes(),
                "memory_bytes": engine.memory_bytes(),
                "admin_changes_applied_up_to": engine.changeset_seq,
            }
        out["change_set"] = _change_set().counts()
        emit(out, as_json)

    run_guarded(body)


@app.command()
def compact(
    version: str | None = typer.Option(None, "--version", help="name of the new release"),
    as_json: bool = JSON_OPT,
) -> None:
    """Fold CURRENT's change log (upserts, tombstones) into a new release and activate it."""

    def body() -> None:
        from vsearch.index.builder import compact as compact_release
        from vsearch.index.manifest import Manifest
        from vsearch.index.release import resolve

        settings = get_settings()
        current = Manifest.read(resolve(_indexes_dir()))
        src = Path(current.source) if current.source else None
        source = _load_embeddings(src) if src is not None and src.is_dir() else None
        manifest = compact_release(
            _indexes_dir(),
            settings.index,
            version,
            threads=_threads(),
            source=source,
            changes=_change_set(),
        )
        emit(_summary(manifest), as_json)

    run_guarded(body)


@app.command()
def rollback(
    to: str | None = typer.Option(None, "--to", help="version (default: the one before CURRENT)"),
    as_json: bool = JSON_OPT,
) -> None:
    """Point CURRENT back at an earlier release."""

    def body() -> None:
        from vsearch.index.builder import rollback as do_rollback

        version = do_rollback(_indexes_dir(), to)
        emit({"current": version}, as_json)

    run_guarded(body)


@app.command()
def upsert(
    embeddings: Path = typer.Option(..., "--embeddings", help="EmbeddingSet of items to upsert"),
    as_json: bool = JSON_OPT,
) -> None:
    """Durably insert or replace items in CURRENT (searchable at once; compaction folds them)."""

    def body() -> None:
        from vsearch.index.engine import Engine

        items = _load_embeddings(embeddings)
        settings = get_settings()
        with Engine.open_current(_indexes_dir(), settings.index, expected_model=items.model) as e:
            seq = e.upsert(items)
            emit({"release": e.version, "upserted": len(items), "log_seq": seq}, as_json)

    run_guarded(body)


@app.command()
def delete(
    item_ids: list[str] = typer.Argument(..., help="item ids to delete"),
    as_json: bool = JSON_OPT,
) -> None:
    """Durably delete items from CURRENT (tombstones until compaction)."""

    def body() -> None:
        from vsearch.index.engine import Engine

        settings = get_settings()
        with Engine.open_current(_indexes_dir(), settings.index) as engine:
            n = engine.delete(item_ids)
            emit({"release": engine.version, "deleted": n, "requested": len(item_ids)}, as_json)

    run_guarded(body)
