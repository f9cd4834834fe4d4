"""A release carries its catalog snapshot, product groups and lineage: written by the builder,
checksummed like every release file, restricted to the indexed items, and required by readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vsearch.errors import BadInput
from vsearch.index.builder import build_release, compact
from vsearch.index.changeset import ChangeSet
from vsearch.index.embeddings import EmbeddingSet
from vsearch.index.engine import Engine
from vsearch.index.manifest import Manifest
from vsearch.index.release import ChecksumMismatch, open_manifest
from vsearch.index.release_data import (
    CATALOG_FILE,
    GROUPS_FILE,
    ReleaseData,
    catalog_from_drops,
    read_catalog,
)

pytestmark = pytest.mark.unit

LINEAGE = {
    "drops": [
        {"drop_id": "d1", "dvc_hash": "aaa.dir", "path": "/x/d1"},
        {"drop_id": "d2", "dvc_hash": "bbb.dir", "path": "/x/d2"},
    ],
    "mlflow": {"run_id": "r1", "model_name": "m", "version": "4"},
}


def _catalog(ids: list[str], title: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"item_id": ids, "category": "a", "title": [f"{title} {i}" for i in ids], "price": 1.0}
    )


def _data(emb, extra: int = 2) -> ReleaseData:
    ids = emb.item_ids.tolist()
    old = _catalog(ids + [f"removed{i}" for i in range(extra)], "old")
    new = _catalog(ids[:3], "new")  # a later drop changed three listings
    groups = pd.DataFrame({"item_id": [*ids[:4], "removed0"], "product_group": "g1"})
    return ReleaseData(catalog_from_drops([("d1", old), ("d2", new)]), groups, dict(LINEAGE))


def test_release_carries_catalog_groups_and_lineage(tmp_path: Path, tiny, index_settings) -> None:
    s = index_settings.model_copy(update={"bits": 16})
    emb = tiny(n=8)
    manifest = build_release(emb, s, tmp_path, data=_data(emb))
    folder = tmp_path / manifest.version
    assert {CATALOG_FILE, GROUPS_FILE} <= set(manifest.files)  # checksummed like the index
    assert manifest.lineage == LINEAGE
    assert manifest.data["catalog_rows"] == 8 and manifest.data["product_groups"] == 1
    assert manifest.data["rows_per_drop"] == {"d1": 5, "d2": 3}
    read = Manifest.read(folder)
    catalog = read_catalog(folder, read).set_index("item_id")
    assert sorted(catalog.index) == sorted(emb.item_ids.tolist())  # removed listings gone
    assert catalog.loc["x0", "title"] == "new x0" and catalog.loc["x0", "drop_id"] == "d2"
    assert catalog.loc["x5", "title"] == "old x5"
    assert catalog["product_group"].notna().sum() == 4

    (folder / CATALOG_FILE).write_bytes(b"not the catalog")
    with pytest.raises(ChecksumMismatch):
        open_manifest(folder)


def test_every_indexed_item_needs_its_listing(tmp_path: Path, tiny, index_settings) -> None:
    emb = tiny(n=6)
    data = ReleaseData(_catalog(emb.item_ids.tolist()[:4], "t"))
    with pytest.raises(BadInput, match="2 indexed item"):
        build_release(emb, index_settings.model_copy(update={"bits": 16}), tmp_path, data=data)
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_a_release_without_catalog_is_refused_by_readers(
    tmp_path: Path, tiny, index_settings
) -> None:
    manifest = build_release(tiny(n=6), index_settings.model_copy(update={"bits": 16}), tmp_path)
    assert manifest.data is None
    with pytest.raises(BadInput, match="rebuild"):
        read_catalog(tmp_path / manifest.version, manifest)


def test_compaction_carries_the_catalog_and_folds_admin_rows(
    tmp_path: Path, tiny, index_settings
) -> None:
    s = index_settings.model_copy(update={"bits": 16})
    emb = tiny(n=8)
    build_release(emb, s, tmp_path / "idx", data=_data(emb))
    changes = ChangeSet.in_folder(tmp_path / "admin")
    seq, _ = changes.record_upsert(
        {"item_id": "adm", "category": "a", "title": "admin", "price": 3.0}, b"p", "JPEG"
    )
    gone = changes.record_delete("x1")
    one = tiny(n=1, seed=9)
    item = EmbeddingSet(
        np.asarray(["adm"], dtype=object), one.categories, one.codes, one.vectors, emb.model
    )
    with Engine.open_current(tmp_path / "idx") as engine:
        engine.upsert(item, ref=seq)
        engine.delete(["x1"], ref=gone)
    manifest = compact(tmp_path / "idx", s, changes=changes)
    catalog = read_catalog(tmp_path / "idx" / manifest.version, manifest).set_index("item_id")
    assert "x1" not in catalog.index and catalog.loc["adm", "title"] == "admin"
    assert manifest.lineage["changes"] == {"seq": 2, "upserts": 1, "deletes": 1}
    assert manifest.lineage["drops"] == LINEAGE["drops"]
    assert manifest.lineage["compacted_from"] == manifest.parent


def test_lineage_of_a_window_view_names_its_drops(tmp_path: Path) -> None:
    """A release built from the merged window view names the ingested drops it merged."""
    import json

    from vsearch.contracts import CATALOG, write_table
    from vsearch.index.release_data import release_data_for

    view = tmp_path / "window"
    view.mkdir()
    row = {
        "item_id": "x1", "category": "a", "seller_id": "s", "title": "t", "price": 2.0,
        "image": "d1/images/x1.jpg", "listed_at": pd.Timestamp("2026-12-01", tz="UTC"),
        "quality": 0.5, "sales": 1,
    }  # fmt: skip
    write_table(pd.DataFrame([row]), CATALOG, view)
    window = [{"drop": "d1", "kind": "snapshot", "dvc_hash": "aaa.dir", "clicks": True}]
    (view / "drop.json").write_text(json.dumps({"drop_id": "window-1", "window": window}))
    data = release_data_for([view], None, None, lambda _: "view.dir")
    (entry,) = data.lineage["drops"]
    assert entry["drop_id"] == "window-1" and entry["dvc_hash"] == "view.dir"
    assert entry["window"] == window
