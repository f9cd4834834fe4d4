"""Releases pinned to their data, and admin changes that survive releases (in-process serving
state over real releases, real tiny models and the real candidate-release step).

- an admin upsert and delete, then a release built by a NEW model (another seed): opened, the
  upserted listing is found by its photo and the deleted one is absent (index and catalog);
- a failed promotion gate followed by a restart serves exactly the previous release with its
  own catalog and drops, though the candidate's catalog, ``data/current.yaml`` and
  ``runs/mining`` all say otherwise;
- a release without a catalog (built before releases carried one) is refused, naming the fix.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests import kit
from vsearch.contracts import CATALOG, read_table, write_table
from vsearch.index.builder import build_release
from vsearch.index.manifest import Manifest
from vsearch.index.release import current_version, set_current
from vsearch.index.release_data import ADMIN_DROP, CATALOG_FILE
from vsearch.registry.gates import evaluate_promotion_gates
from vsearch.registry.promotion import Candidate, candidate_release
from vsearch.search.build import encode_catalog
from vsearch.search.encoder import NetEncoder
from vsearch.search.images import decode_images
from vsearch.serving.state import ReloadRefused, ServingState
from vsearch.settings import Settings, load_settings
from vsearch.trained import EMBEDDINGS_DIR, MODEL_DIR
from vsearch.validation.tables import drop_id_of

pytestmark = pytest.mark.integration

NEW_ITEM = "admin-added-1"


def _settings(served_project, tmp_path: Path, model: str) -> Settings:
    s = load_settings(served_project.params)
    s.serving.model_source = "path"
    s.serving.model_dir = served_project.root / "models" / model
    s.serving.admin_dir = tmp_path / "admin"
    return s


def _run_folder(served_project, model: str, out: Path) -> Candidate:
    """A training run of ``model`` as the training stage leaves it: model/ + embeddings/."""
    shutil.copytree(served_project.root / "models" / model, out / MODEL_DIR)
    encoder = NetEncoder.load(out / MODEL_DIR)
    catalog = served_project.catalog
    images = decode_images(
        [served_project.drop / p for p in catalog["image"]], kit.TINY_NET["input_size"], 2
    )
    encode_catalog(encoder, catalog, images).save(out / EMBEDDINGS_DIR)
    return Candidate(out, encoder.fingerprint, "7", {"model": {}})


def _load(settings: Settings, root: Path) -> ServingState:
    """What the service does when it starts: a fresh state, then the first load."""
    state = ServingState(settings, root)
    state.try_initial_load()
    assert state.current is not None, state.last_error
    return state


def _ids(response) -> list[str]:
    return [i for hit in response.results for i in (hit.item_id, *hit.more_sellers)]


@pytest.fixture
def restore_current(served_project):
    """Put back CURRENT (and remove the pointers a test wrote outside the releases)."""
    root = served_project.root
    before = current_version(served_project.indexes)
    yield
    set_current(served_project.indexes, before)
    shutil.rmtree(root / "runs" / "mining", ignore_errors=True)
    (root / "data" / "current.yaml").unlink(missing_ok=True)


def test_admin_changes_survive_a_release_built_by_a_new_model(
    served_project, tmp_path: Path, restore_current
) -> None:
    root, drop = served_project.root, served_project.drop
    catalog = served_project.catalog
    new_photo = sorted((drop / "images" / "queries").glob("*"))[0].read_bytes()
    category = str(catalog.iloc[0]["category"])
    gone = str(catalog.iloc[5]["item_id"])
    gone_photo = (drop / catalog.iloc[5]["image"]).read_bytes()

    s_a = _settings(served_project, tmp_path, "a")
    state = _load(s_a, root)
    try:
        row = {
            "item_id": NEW_ITEM,
            "category": category,
            "seller_id": "s-admin",
            "title": "Added through the admin API",
            "price": 12.5,
            "quality": float("nan"),
            "sales": 0,
        }
        out = state.upsert(row, new_photo)  # the calls POST/DELETE /admin/items make
        assert out["change"] == 1
        assert state.delete(gone) == 1
        assert state.delete("no-such-item") == 0  # nothing live: nothing recorded
    finally:
        state.close()

    cand = _run_folder(served_project, "b", tmp_path / "run_b")
    assert cand.fingerprint != served_project.fingerprints["a"]
    version, reused = candidate_release(s_a, root, cand, [drop])
    assert not reused and current_version(served_project.indexes) == "v0001"  # not activated
    manifest = Manifest.read(served_project.indexes / version)
    assert manifest.lineage["changes"] == {"seq": 2, "upserts": 1, "deletes": 1}
    assert manifest.lineage["drops"][0]["drop_id"] == drop_id_of(drop)  # its drop.json id
    assert manifest.lineage["drops"][0]["path"] == str(drop.resolve())
    assert manifest.lineage["mlflow"] is None  # this run was not tracked
    snapshot = pd.read_parquet(served_project.indexes / version / CATALOG_FILE)
    assert gone not in set(snapshot["item_id"])
    added = snapshot[snapshot["item_id"] == NEW_ITEM].iloc[0]
    assert added["title"] == row["title"] and added["drop_id"] == ADMIN_DROP
    assert len(snapshot) == len(catalog)  # one in, one out
    assert candidate_release(s_a, root, cand, [drop]) == (version, True)  # same data: reused

    set_current(served_project.indexes, version)
    state = _load(_settings(served_project, tmp_path, "b"), root)
    try:
        served = state.current
        assert served.release == version and served.changes_applied == 0  # folded already
        assert served.model["fingerprint"] == cand.fingerprint
        pipeline = served.pipeline
        found = pipeline.search_bytes(new_photo, 5, category=category)
        assert NEW_ITEM in _ids(found)
        hit = next(h for h in found.results if NEW_ITEM in (h.item_id, *h.more_sellers))
        if hit.item_id == NEW_ITEM:
            assert hit.title == row["title"] and hit.price == 12.5
        assert pipeline.engine.lookup([gone])[0] == -1
        gone_cat = str(catalog.iloc[5]["category"])
        assert gone not in _ids(pipeline.search_bytes(gone_photo, 20, category=gone_cat))
        assert served.describe()["admin_changes"]["in_release"] == 2
    finally:
        state.close()


def test_a_change_made_after_the_build_is_applied_when_the_release_loads(
    served_project, tmp_path: Path, restore_current
) -> None:
    """An admin write the new release does not hold (made while the candidate waited at the
    gate) is re-encoded by the new model when the release loads, once."""
    root, drop = served_project.root, served_project.drop
    s_a = _settings(served_project, tmp_path, "a")
    cand = _run_folder(served_project, "b", tmp_path / "run_b")
    version, _ = candidate_release(s_a, root, cand, [drop])
    photo = sorted((drop / "images" / "queries").glob("*"))[1].read_bytes()
    category = str(served_project.catalog.iloc[0]["category"])
    state = _load(s_a, root)  # still v0001 (model A)
    try:
        state.upsert({"item_id": "late-1", "category": category, "price": 3.0}, photo)
    finally:
        state.close()
    set_current(served_project.indexes, version)
    s_b = _settings(served_project, tmp_path, "b")
    for expected in (1, 0):  # the second load finds the change in the release's log
        state = _load(s_b, root)
        try:
            assert state.current.changes_applied == expected
            found = state.current.pipeline.search_bytes(photo, 5, category=category)
            assert "late-1" in _ids(found)
        finally:
            state.close()


def test_failed_gate_then_restart_serves_the_previous_release_with_its_own_catalog(
    served_project, tmp_path: Path, copy_drop, restore_current
) -> None:
    root, drop = served_project.root, served_project.drop
    # The next night's drop: same listings, other titles and prices.
    drop2 = copy_drop(drop, tmp_path / "night2")
    changed = read_table(drop2, CATALOG)
    changed["title"] = "night 2: " + changed["title"].astype(str)
    changed["price"] = changed["price"] * 2
    write_table(changed, CATALOG, drop2)
    # Everything outside the release now points at the new night.
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "current.yaml").write_text(f"drop: {drop2.name}\n")
    ids = served_project.catalog["item_id"].astype(str)
    kit.write_mining_outputs(
        root / "runs" / "mining",
        virtual_ids=pd.DataFrame({"item_id": ids, "virtual_id": "v-all", "cluster_size": len(ids)}),
    )

    s = _settings(served_project, tmp_path, "a")
    before = _load(s, root)
    try:
        served_before = before.current.describe()
        catalog_before = before.current.pipeline._catalog.frame.copy()
    finally:
        before.close()

    cand = _run_folder(served_project, "b", tmp_path / "run_b")
    version, _ = candidate_release(s, root, cand, [drop2])
    candidate = Manifest.read(served_project.indexes / version)
    assert [d["path"] for d in candidate.lineage["drops"]] == [str(drop2.resolve())]
    assert candidate.data["product_groups"] == 1
    report = evaluate_promotion_gates({}, None, s.registry.gates)  # no figures: fails closed
    assert not report.passed  # so the promotion ships nothing: CURRENT stays
    assert current_version(served_project.indexes) == "v0001"

    after = _load(s, root)  # the restart
    try:
        served = after.current
        assert served.release == "v0001"
        assert served.model["fingerprint"] == served_project.fingerprints["a"]
        lineage = served.describe()["lineage"]
        assert lineage == served_before["lineage"]
        assert [d["path"] for d in lineage["drops"]] == [str(drop.resolve())]
        frame = served.pipeline._catalog.frame
        assert "product_group" not in frame.columns  # not runs/mining's groups
        pd.testing.assert_frame_equal(
            frame.reset_index(drop=True), catalog_before.reset_index(drop=True)
        )
        assert not frame["title"].astype(str).str.startswith("night 2").any()
        listing = served_project.catalog.iloc[3]
        data = (drop / listing["image"]).read_bytes()
        res = served.pipeline.search_bytes(data, 3, category=str(listing["category"]))
        assert str(listing["item_id"]) in _ids(res)
        original = served_project.catalog.set_index("item_id")
        shown = [h for h in res.results if h.item_id in original.index]
        assert shown  # every result shows the listing as the release indexed it
        for hit in shown:
            assert hit.title == original.loc[hit.item_id, "title"]
            assert hit.price == pytest.approx(original.loc[hit.item_id, "price"])
        # photos and samples come from the release's own drop
        assert after.drop_dir().resolve() == drop.resolve()
    finally:
        after.close()


def test_a_release_without_its_catalog_is_refused_with_the_fix(
    served_project, tmp_path: Path, restore_current
) -> None:
    cand = _run_folder(served_project, "a", tmp_path / "run_a")
    from vsearch.index.embeddings import EmbeddingSet

    emb = EmbeddingSet.load(cand.run_folder / EMBEDDINGS_DIR)
    s = _settings(served_project, tmp_path, "a")
    build_release(emb, s.index, served_project.indexes, version="vold")  # no data: old style
    state = ServingState(s, served_project.root)
    try:
        with pytest.raises(ReloadRefused, match="carries no catalog.*rebuild"):
            state.reload()
        assert state.current is None
    finally:
        state.close()
