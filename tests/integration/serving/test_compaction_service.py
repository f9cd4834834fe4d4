"""`vsearch index compact` while the service runs (its in-process state, real model, real
releases): admin writes keep working (the sealed release is noticed and CURRENT reopened), an
upsert after the compaction is searchable, and the listings nobody touched keep their drop's
metadata, in what the service shows and in the compacted release."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from vsearch.index.builder import compact
from vsearch.index.changeset import ChangeSet
from vsearch.index.manifest import Manifest
from vsearch.index.release import current_version, resolve
from vsearch.index.release_data import read_catalog
from vsearch.search.pipeline import CATALOG_FIELDS
from vsearch.serving.state import ServingState

pytestmark = pytest.mark.integration


def _listing(served_project, row: int, item_id: str) -> tuple[dict, bytes]:
    item = served_project.catalog.iloc[row]
    fields = {
        "item_id": item_id,
        "category": str(item["category"]),
        "seller_id": "seller-admin",
        "title": f"admin listing {item_id}",
        "price": 12.5,
        "quality": math.nan,
        "sales": 0,
        "stock": None,
    }
    return fields, (served_project.drop / item["image"]).read_bytes()


def _untouched(frame: pd.DataFrame, touched: set[str]) -> pd.DataFrame:
    out = frame[~frame["item_id"].astype(str).isin(touched)][list(CATALOG_FIELDS)]
    out = out.astype({"item_id": str}).set_index("item_id").sort_index()
    return out.astype({c: float for c in ("price", "quality", "sales")})


def test_admin_writes_survive_a_compaction_and_untouched_metadata_stays_the_drops(
    served_project,
) -> None:
    s = served_project.settings
    root = served_project.root
    state = ServingState(s, root)
    state.try_initial_load()
    try:
        assert state.current is not None and state.current.release == "v0001"
        fields, photo = _listing(served_project, 0, "admin-before")
        assert state.upsert(fields, photo)["release"] == "v0001"

        changes = ChangeSet.in_folder(state.abs(s.serving.admin_dir))
        compact(served_project.indexes, s.index, changes=changes)  # as `vsearch index compact`
        compacted = current_version(served_project.indexes)
        assert compacted not in (None, "v0001")

        # the service still holds v0001, now sealed: the write reopens CURRENT and succeeds
        fields, photo = _listing(served_project, 3, "admin-after")
        out = state.upsert(fields, photo)
        assert out["release"] == compacted and state.current.release == compacted
        with state.lease() as served:
            hits = served.pipeline.search_bytes(photo, 5, category=fields["category"])
            found = [
                i for h in hits.to_dict()["results"] for i in (h["item_id"], *h["more_sellers"])
            ]
        assert "admin-after" in found and "admin-before" in {
            *served.pipeline.catalog["item_id"].astype(str)
        }
        deleted = str(served_project.catalog.iloc[5]["item_id"])
        assert state.delete(deleted) == 1
        assert state.upsert(*_listing(served_project, 6, "admin-last"))["release"] == compacted

        touched = {"admin-before", "admin-after", "admin-last", deleted}
        drop = _untouched(served_project.catalog, touched)
        with state.lease() as served:
            shown = served.pipeline.catalog
        pd.testing.assert_frame_equal(_untouched(shown, touched), drop, check_dtype=False)
        assert state.current.pipeline.engine.lookup([deleted])[0] < 0  # gone from the index

        folder = resolve(served_project.indexes)
        released = read_catalog(folder, Manifest.read(folder))
        pd.testing.assert_frame_equal(
            _untouched(released, touched | {"admin-before"}), drop, check_dtype=False
        )
        assert (released["item_id"].astype(str) == "admin-before").sum() == 1
    finally:
        state.close()
