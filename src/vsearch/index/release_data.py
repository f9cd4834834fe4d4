"""What a release carries besides its index: the catalog snapshot, product groups and lineage.

Why inside the release: the service must show, for every result, the listing the index was
built from, and group listings by the virtual IDs mined from the same data. Read from anywhere
else (``data/current.yaml``'s drop, ``runs/mining``), a failed promotion, a restart or a
rollback would pair one release's index with another night's catalog. So the builder writes
both tables into the release folder (checksummed in the manifest like every other file) and
records where they came from (the drops of the data window with their DVC hashes, the MLflow
run and model version, the last change-set entry folded in); the service reads only them.

Files in ``indexes/<version>/``::

    catalog.parquet   one row per indexed listing: the catalog contract's columns, plus
                      ``drop_id`` (the drop the row came from, whose folder holds its photo;
                      ``admin`` for listings added through the admin API)
    groups.parquet    item_id -> product_group (mined virtual IDs of two or more listings)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vsearch.errors import BadInput

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.parquet"
GROUPS_FILE = "groups.parquet"
DROP_COLUMN = "drop_id"  # which drop a catalog row came from
ADMIN_DROP = "admin"  # drop_id of listings added through the admin API
PRODUCT_GROUP = "product_group"  # the catalog column of product groups (search pipeline, service)
_EXAMPLES = 5


@dataclass
class ReleaseData:
    """The data a release is built from, handed to the builder by its caller.

    Attributes:
        catalog: the catalog rows (contract columns, any extra ones kept); at least one row per
            indexed item id, the last row of an id wins. A ``drop_id`` column is kept if present.
        groups: ``item_id, product_group`` (empty: no groups).
        lineage: ``{"drops": [{"drop_id", "dvc_hash", "path"}], "mlflow": {"run_id",
            "model_name", "version"}, "changes": {"seq", "upserts", "deletes"}}`` (any part may be
            missing when unknown: a release built by hand from an embeddings folder).
    """

    catalog: pd.DataFrame
    groups: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"item_id": [], PRODUCT_GROUP: []})
    )
    lineage: dict[str, Any] = field(default_factory=dict)

    def restricted_to(
        self, item_ids: np.ndarray, categories: np.ndarray, require_all: bool = True
    ) -> ReleaseData:
        """Catalog and groups of exactly the indexed items.

        Args:
            item_ids: the indexed items.
            categories: their partitions (the category of a row made up for a missing one).
            require_all: refuse items without a catalog row; else give them a row of their
                id and category only (compaction: items written with ``vsearch index upsert``,
                which carries no listing fields).

        Raises:
            BadInput: an indexed item has no catalog row (its results would have no title,
                seller or price).
        """
        if "item_id" not in self.catalog.columns:
            raise BadInput("the release's catalog has no item_id column")
        ids = pd.Index(np.asarray(item_ids, dtype=object).astype(str))
        cat = self.catalog.assign(item_id=self.catalog["item_id"].astype(str))
        cat = cat.drop_duplicates("item_id", keep="last")
        missing = ids.difference(pd.Index(cat["item_id"]))
        if len(missing) and not require_all:
            cats = pd.Series(np.asarray(categories, dtype=object).astype(str), index=ids)
            extra = pd.DataFrame({"item_id": missing, "category": cats.loc[missing].to_numpy()})
            cat = pd.concat([cat, extra], ignore_index=True)
        elif len(missing):
            raise BadInput(
                f"{len(missing)} indexed item(s) have no catalog row (e.g. "
                f"{list(missing[:_EXAMPLES])}): build the release from the drops the embeddings "
                "were computed from"
            )
        cat = cat.set_index("item_id").loc[ids].reset_index()
        groups = self.groups
        if len(groups):
            groups = groups.assign(item_id=groups["item_id"].astype(str))
            groups = groups[groups["item_id"].isin(ids)].drop_duplicates("item_id", keep="last")
        return ReleaseData(cat, groups[["item_id", PRODUCT_GROUP]], dict(self.lineage))

    def write(self, folder: Path) -> list[str]:
        """Write the two tables into a staging release folder; returns their relative paths."""
        catalog = self.catalog.copy()
        for col in catalog.columns:  # object columns of mixed types (admin rows): as strings
            if catalog[col].dtype == object and col not in ("price", "quality", "sales"):
                catalog[col] = catalog[col].map(lambda v: None if _missing(v) else str(v))
        catalog.to_parquet(folder / CATALOG_FILE, index=False)
        groups = self.groups.astype({"item_id": str, PRODUCT_GROUP: str})
        groups.to_parquet(folder / GROUPS_FILE, index=False)
        return [CATALOG_FILE, GROUPS_FILE]

    def summary(self) -> dict[str, Any]:
        """The manifest's ``data`` entry: file names and counts."""
        drops = (
            self.catalog[DROP_COLUMN].value_counts().to_dict()
            if DROP_COLUMN in self.catalog.columns
            else {}
        )
        return {
            "catalog": CATALOG_FILE,
            "catalog_rows": len(self.catalog),
            "rows_per_drop": {str(k): int(v) for k, v in drops.items()},
            "groups": GROUPS_FILE,
            "group_rows": len(self.groups),
            "product_groups": int(self.groups[PRODUCT_GROUP].nunique()) if len(self.groups) else 0,
        }


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def has_data(manifest: Any) -> bool:
    """Whether a release carries its catalog (built after releases were pinned to their data)."""
    return bool(getattr(manifest, "data", None))


def require_data(manifest: Any) -> None:
    """Refuse a release without its catalog.

    Raises:
        BadInput: the release was built before releases carried their catalog; it names the
            way out (rebuild it), because serving it with today's catalog is exactly the
            mismatch releases now prevent.
    """
    if not has_data(manifest):
        raise BadInput(
            f"release {manifest.version} carries no catalog (built before releases were pinned "
            "to their data): rebuild it (`vsearch index build --embeddings RUN/embeddings "
            "--drop data/raw/DROP`, or the nightly) and serve the new release"
        )


def read_catalog(folder: Path, manifest: Any) -> pd.DataFrame:
    """The release's catalog with its product groups as a ``product_group`` column.

    Raises:
        BadInput: the release carries no catalog (:func:`require_data`).
    """
    require_data(manifest)
    data = manifest.data
    catalog = pd.read_parquet(folder / data["catalog"])
    groups = pd.read_parquet(folder / data["groups"])
    base = catalog.drop(columns=[PRODUCT_GROUP], errors="ignore")
    if len(groups):
        base = base.merge(groups, on="item_id", how="left")
    return base


def catalog_from_drops(drops: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """One catalog from the catalogs of a window of drops, oldest first: the latest row of an
    item id wins, and each row says the drop it came from (``drop_id``).

    Listings removed by a later drop are not in the embeddings of a model trained on the
    window, so they drop out when the catalog is restricted to the indexed items.
    """
    if not drops:
        raise BadInput("no drop given for the release's catalog")
    parts = [df.assign(**{DROP_COLUMN: drop_id}) for drop_id, df in drops]
    merged = pd.concat(parts, ignore_index=True)
    return merged.drop_duplicates("item_id", keep="last").reset_index(drop=True)


def groups_from_mining(mining_dir: Path) -> pd.DataFrame:
    """``item_id → product_group`` for listings in a virtual ID of two or more listings.

    Raises:
        FileNotFoundError: the folder has no virtual IDs (run ``vsearch mine``).
    """
    from vsearch.mined import read_virtual_ids

    vids = read_virtual_ids(mining_dir, columns=["item_id", "virtual_id", "cluster_size"])
    multi = vids[vids["cluster_size"] >= 2]
    return pd.DataFrame(
        {"item_id": multi["item_id"].astype(str), PRODUCT_GROUP: multi["virtual_id"].astype(str)}
    )


def frame_sha256(df: pd.DataFrame) -> str:
    """A content hash of a table (rows sorted), to tell whether two releases' groups match."""
    rows = sorted(map(tuple, df.astype(str).itertuples(index=False)))
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def mlflow_lineage(run_folder: Path, version: str | None = None) -> dict[str, Any] | None:
    """The MLflow run and model version of a training run folder (``None`` if not tracked)."""
    from vsearch.trained import RUN_INFO_FILE

    path = Path(run_folder) / RUN_INFO_FILE
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return {
        "run_id": info.get("run_id"),
        "experiment_id": info.get("experiment_id"),
        "model_name": info.get("model_name"),
        "version": version or info.get("version"),
    }


def lineage_of(manifest: Any) -> dict[str, Any]:
    """drops → MLflow run / model version → release, as ``/info`` and ``vsearch index info``
    show it (a release built before releases carried their data says so)."""
    lineage = dict(manifest.lineage or {})
    if not manifest.data:
        return {
            "release": manifest.version,
            "warning": "no catalog inside: built before releases were pinned to their data; "
            "the service refuses it (rebuild with `vsearch index build --drop ...`)",
        }
    return {
        "drops": lineage.get("drops", []),
        "mlflow": lineage.get("mlflow"),
        "release": manifest.version,
        "model_fingerprint": manifest.model.fingerprint,
        "groups": lineage.get("groups"),
        "changes": lineage.get("changes"),
        "compacted_from": lineage.get("compacted_from"),
    }


def _drop_lineage(drop: Path, dvc_hash: Callable[[Path], str | None]) -> dict[str, Any]:
    """A drop's entry in a release's lineage; a merged window view (``vsearch window``) also
    names the ingested drops it merged, each with its DVC hash (its ``drop.json``'s window)."""
    from vsearch.contracts import read_drop_manifest

    manifest = read_drop_manifest(drop)
    entry = {
        "drop_id": str(manifest.get("drop_id") or drop.name),
        "dvc_hash": dvc_hash(drop),
        "path": str(drop.resolve()),
    }
    if manifest.get("window"):
        entry["window"] = manifest["window"]
    return entry


def release_data_for(
    drops: list[Path],
    mining_dir: Path | None,
    mlflow: dict[str, Any] | None,
    dvc_hash: Callable[[Path], str | None],
) -> ReleaseData:
    """What a release built from the window of ``drops`` (oldest first) carries: their merged
    catalog, the product groups mined in ``mining_dir`` and the lineage (drops with their DVC
    hashes, the MLflow run and model version when known).

    One implementation for the candidate release, ``vsearch index build`` and the
    ``index-build`` flow.

    Args:
        drops: drop folders in the contract format, oldest first.
        mining_dir: mining outputs (``None`` or without virtual IDs: no groups, a warning).
        mlflow: :func:`mlflow_lineage` of the training run, or ``None``.
        dvc_hash: the md5 DVC versions a drop under (``None`` when it is not tracked).
    """
    from vsearch.contracts import CATALOG, ContractError, read_table
    from vsearch.mined import has_virtual_ids

    if not drops:
        raise BadInput("a release needs the drops its model was trained on (none given)")
    try:
        catalog = catalog_from_drops([(d.name, read_table(d, CATALOG)) for d in drops])
    except ContractError as exc:
        raise BadInput(f"catalog of the release's drops: {exc}") from None
    lineage: dict[str, Any] = {
        "drops": [_drop_lineage(d, dvc_hash) for d in drops],
        "mlflow": mlflow,
    }
    data = ReleaseData(catalog, lineage=lineage)
    source = None
    if mining_dir is not None and has_virtual_ids(mining_dir):
        data.groups = groups_from_mining(mining_dir)
        source = str(Path(mining_dir).resolve())
    else:
        log.warning("no product groups for the release (%s has no virtual IDs)", mining_dir)
    lineage["groups"] = {"source": source, "sha256": frame_sha256(data.groups)}
    return data
