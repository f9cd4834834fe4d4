"""Compaction folds the change log into a new release without losing concurrent writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index.builder import compact, rollback, serial_map
from vsearch.index.embeddings import EmbeddingSet
from vsearch.index.engine import Engine, StaleRelease
from vsearch.index.manifest import Manifest
from vsearch.index.release import LOG_FILE, current_version, resolve, set_current
from vsearch.index.upsert_log import ChangeLog

pytestmark = pytest.mark.unit


def _new_items(world, n: int, prefix: str, seed: int) -> EmbeddingSet:
    q = world.queries(n, seed=seed)
    ids = np.asarray([f"{prefix}{i}" for i in range(n)], dtype=object)
    return EmbeddingSet(ids, q.category, q.codes, q.vectors, world.catalog.model)


def test_compaction_folds_upserts_and_deletes(indexes_dir: Path, world, index_settings) -> None:
    new = _new_items(world, 5, "new", seed=20)
    gone = world.catalog.item_ids[:3].tolist()
    with Engine.open_current(indexes_dir) as old:
        old.upsert(new)
        old.delete(gone)
        before = old.search(new.codes, new.vectors, [[c] for c in new.categories], k=5)
        manifest = compact(indexes_dir, index_settings)
        with pytest.raises(StaleRelease, match="compacted into v0002"):
            old.upsert(new)
    assert current_version(indexes_dir) == "v0002" == manifest.version
    assert manifest.n_items == len(world.catalog) + 5 - 3
    assert manifest.parent == "v0001" and manifest.folded == {"from": "v0001", "seq": 2}
    with Engine.open_current(indexes_dir) as e:
        assert e.log.last_seq == 0 and len(e) == manifest.n_items
        assert (e.lookup(gone) == -1).all() and (e.lookup(new.item_ids) >= 0).all()
        after = e.search(new.codes, new.vectors, [[c] for c in new.categories], k=5)
    assert after.item_ids[:, 0].tolist() == before.item_ids[:, 0].tolist() == new.item_ids.tolist()


def test_writes_during_compaction_are_carried_over(indexes_dir: Path, world, index_settings):
    late = _new_items(world, 2, "late", seed=21)

    def map_with_a_write(fn, jobs):
        with Engine.open_current(indexes_dir) as writer:  # another process writes meanwhile
            writer.upsert(late)
            writer.delete([world.catalog.item_ids[10]])
        return serial_map(fn, jobs)

    manifest = compact(indexes_dir, index_settings, map_fn=map_with_a_write)
    assert manifest.n_items == len(world.catalog)  # built before the late writes
    with Engine.open_current(indexes_dir) as e:
        assert e.log.last_seq == 2  # ... which arrived as the new release's log
        assert (e.lookup(late.item_ids) >= 0).all()
        assert e.lookup([world.catalog.item_ids[10]])[0] == -1


def test_sealed_but_not_switched_rolls_forward(indexes_dir: Path, world, index_settings) -> None:
    compact(indexes_dir, index_settings)
    set_current(indexes_dir, "v0001")  # as if the compaction died right after sealing
    with Engine.open_current(indexes_dir) as e:
        assert e.version == "v0002"
    assert current_version(indexes_dir) == "v0002"


def test_rollback_reopens_the_sealed_log(indexes_dir: Path, world, index_settings) -> None:
    compact(indexes_dir, index_settings)
    assert rollback(indexes_dir) == "v0001"
    with Engine.open_current(indexes_dir) as e:
        assert e.version == "v0001" and e.sealed_into is None
        e.upsert(_new_items(world, 1, "after", seed=22))
    with ChangeLog(resolve(indexes_dir) / LOG_FILE) as log:
        assert [c.op for c in log.read_new()] == ["seal", "unseal", "upsert"]
    assert Manifest.read(resolve(indexes_dir)).version == "v0001"


def test_compaction_with_source_uses_exact_vectors(indexes_dir: Path, world, index_settings):
    from vsearch.index.builder import _source_rows

    with Engine.open_current(indexes_dir) as e:
        e.delete([world.catalog.item_ids[0]])
        live = e.export(_source_rows(e, world.catalog))  # what compaction rebuilds from
        decoded = e.export()
    row_of = {item: i for i, item in enumerate(world.catalog.item_ids.tolist())}
    rows = np.asarray([row_of[x] for x in live.item_ids])
    np.testing.assert_array_equal(live.vectors, world.catalog.vectors[rows])
    assert np.abs(decoded.vectors - live.vectors).max() > 0  # the store alone is approximate
    manifest = compact(indexes_dir, index_settings, source=world.catalog)
    assert manifest.n_items == len(world.catalog) - 1
