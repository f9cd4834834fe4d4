"""The engine: exact answers on hand-made data, tombstones, upserts, replay, routing, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.errors import BadInput
from vsearch.index.builder import build_release
from vsearch.index.embeddings import EmbeddingSet
from vsearch.index.engine import Engine
from vsearch.index.rerank_store import numpy_dot
from vsearch.settings import IndexSettings

pytestmark = pytest.mark.unit


def _hand_made(model) -> EmbeddingSet:
    """Two categories, 8-bit codes, 2-d vectors with a known nearest neighbour."""
    codes = np.array(
        [[0b0000_0000], [0b0000_0001], [0b0000_0011], [0b1111_1111], [0b0000_0000], [0b1000_0000]],
        dtype=np.uint8,
    )
    angles = np.array([0.0, 0.3, 0.1, 3.0, 0.05, 0.2])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    return EmbeddingSet(
        np.asarray(["a0", "a1", "a2", "a3", "b0", "b1"], dtype=object),
        np.asarray(["a", "a", "a", "a", "b", "b"], dtype=object),
        codes,
        vectors,
        model,
    )


@pytest.fixture
def hand_engine(tmp_path: Path, model) -> Engine:
    s = IndexSettings(bits=8, rerank_depth=3, rerank_dtype="float16")
    build_release(_hand_made(model), s, tmp_path / "idx")
    engine = Engine.open_current(tmp_path / "idx", dot=numpy_dot)
    yield engine
    engine.close()


def _query(angle: float, code: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[np.cos(angle), np.sin(angle)]], dtype=np.float32)
    return np.array([[code]], dtype=np.uint8), v


def test_exact_results_on_hand_made_codes(hand_engine: Engine) -> None:
    code, vec = _query(0.0, 0b0000_0000)
    res = hand_engine.search(code, vec, ["a"], k=3)
    # Hamming shortlist of depth 3 in "a": a0 (0), a1 (1), a2 (2); a3 (8 bits) is cut.
    # Re-ranked by cosine with angle 0: a0 (0.0) > a2 (0.1) > a1 (0.3).
    assert res.item_ids.tolist() == [["a0", "a2", "a1"]]
    assert res.hamming.tolist() == [[0, 2, 1]]
    np.testing.assert_allclose(res.scores[0], np.cos([0.0, 0.1, 0.3]), atol=1e-3)
    assert res.categories.tolist() == [["a", "a", "a"]]


def test_multi_category_search_merges_by_hamming(hand_engine: Engine) -> None:
    code, vec = _query(0.0, 0b0000_0000)
    res = hand_engine.search(code, vec, [["a", "b"]], k=4, rerank_depth=4)
    # Hamming top-4 over both partitions: a0 (0), b0 (0), a1 (1), b1 (1) — a2 (2) is cut.
    assert set(res.item_ids[0].tolist()) == {"a0", "b0", "a1", "b1"}
    assert res.item_ids[0, 0] == "a0" and res.item_ids[0, 1] == "b0"


def test_fewer_than_k_results_are_padded(hand_engine: Engine) -> None:
    code, vec = _query(0.0, 0)
    res = hand_engine.search(code, vec, ["b"], k=5)
    assert res.item_ids[0].tolist()[:2] == ["b0", "b1"] and res.item_ids[0, 2] is None
    assert np.isnan(res.scores[0, 2:]).all() and (res.hamming[0, 2:] == -1).all()


def test_tombstones_are_never_returned(hand_engine: Engine) -> None:
    code, vec = _query(0.0, 0)
    assert hand_engine.delete(["a0", "nope"]) == 1
    res = hand_engine.search(code, vec, ["a"], k=4, rerank_depth=4)
    assert "a0" not in res.item_ids[0].tolist()
    assert set(res.item_ids[0].tolist()) - {None} == {"a1", "a2", "a3"}
    assert len(hand_engine) == 5 and hand_engine.lookup(["a0"]).tolist() == [-1]


def test_upsert_then_search_finds_it_and_replaces_old(hand_engine: Engine, model) -> None:
    new = EmbeddingSet(
        np.asarray(["a3"], dtype=object),
        np.asarray(["a"], dtype=object),
        np.array([[0]], np.uint8),
        np.array([[1.0, 0.0]], np.float32),
        model,
    )
    old_internal = hand_engine.lookup(["a3"])[0]
    hand_engine.upsert(new)
    code, vec = _query(0.0, 0)
    res = hand_engine.search(code, vec, ["a"], k=2)
    assert res.item_ids[0, 0] == "a3" or res.item_ids[0, 1] == "a3"
    assert hand_engine.lookup(["a3"])[0] != old_internal and len(hand_engine) == 6
    all_ids = hand_engine.search(code, vec, ["a"], k=10, rerank_depth=10).item_ids[0]
    assert [x for x in all_ids.tolist() if x == "a3"] == ["a3"]  # old copy is tombstoned


def test_upsert_into_a_new_category(hand_engine: Engine, model) -> None:
    new = EmbeddingSet(
        np.asarray(["c0"], dtype=object),
        np.asarray(["c"], dtype=object),
        np.array([[7]], np.uint8),
        np.array([[0.0, 1.0]], np.float32),
        model,
    )
    hand_engine.upsert(new)
    code, vec = _query(1.5, 7)
    assert hand_engine.search(code, vec, ["c"], k=1).item_ids.tolist() == [["c0"]]
    assert "c" in hand_engine.categories


def test_writes_are_replayed_on_open(tmp_path: Path, model) -> None:
    s = IndexSettings(bits=8, rerank_depth=3, rerank_dtype="float16")
    build_release(_hand_made(model), s, tmp_path / "idx")
    with Engine.open_current(tmp_path / "idx") as e:
        e.delete(["a0"])
        e.upsert(
            EmbeddingSet(
                np.asarray(["z"], dtype=object),
                np.asarray(["b"], dtype=object),
                np.array([[0]], np.uint8),
                np.array([[1.0, 0.0]], np.float32),
                model,
            )
        )
    with Engine.open_current(tmp_path / "idx") as e:
        code, vec = _query(0.0, 0)
        assert e.search(code, vec, ["b"], k=1).item_ids.tolist() == [["z"]]
        assert e.lookup(["a0", "z"])[0] == -1 and e.lookup(["z"])[0] >= 0


def test_other_process_writes_are_seen_by_sync(tmp_path: Path, model) -> None:
    s = IndexSettings(bits=8, rerank_depth=3, rerank_dtype="float16")
    build_release(_hand_made(model), s, tmp_path / "idx")
    with (
        Engine.open_current(tmp_path / "idx") as reader,
        Engine.open_current(tmp_path / "idx") as writer,
    ):
        writer.delete(["b0"])
        code, vec = _query(0.0, 0)
        res = reader.search(code, vec, ["b"], k=2)  # search syncs first
        assert res.item_ids[0].tolist() == ["b1", None]


def test_read_only_refuses_writes(indexes_dir: Path) -> None:
    with Engine.open_current(indexes_dir, writable=False) as e, pytest.raises(BadInput):
        e.delete(["it00000001"])


def test_bad_queries_are_value_errors(hand_engine: Engine) -> None:
    code, vec = _query(0.0, 0)
    with pytest.raises(ValueError, match="unknown categories"):
        hand_engine.search(code, vec, ["shoes"])
    with pytest.raises(ValueError, match="bits"):
        hand_engine.search(np.zeros((1, 2), np.uint8), vec, ["a"])
    with pytest.raises(ValueError, match="dimension"):
        hand_engine.search(code, np.zeros((1, 3), np.float32), ["a"])
    with pytest.raises(ValueError, match="k must be"):
        hand_engine.search(code, vec, ["a"], k=0)


def test_batch_single_and_threads_agree(indexes_dir: Path, world) -> None:
    q = world.queries(40, seed=5)
    with Engine.open_current(indexes_dir) as e:
        cats = e.route(q.category_probs, list(world.category_names))
        batch = e.search(q.codes, q.vectors, cats, k=10)
        threaded = e.search(q.codes, q.vectors, cats, k=10, threads=3)
        assert batch.item_ids.tolist() == threaded.item_ids.tolist()
        for i in (0, 17, 39):
            one = e.search(q.codes[i], q.vectors[i], [cats[i]], k=10)
            assert one.item_ids[0].tolist() == batch.item_ids[i].tolist()


def test_recall_against_exact_search(indexes_dir: Path, world) -> None:
    q = world.queries(200, seed=6)
    exact = np.argsort(-(q.vectors @ world.catalog.vectors.T), axis=1)[:, :10]
    truth = world.catalog.item_ids[exact]
    with Engine.open_current(indexes_dir) as e:
        res = e.search(q.codes, q.vectors, [[c] for c in q.category], k=10, rerank_depth=160)
    recall = np.mean([len(set(r) & set(t)) / 10 for r, t in zip(res.item_ids, truth, strict=True)])
    assert recall > 0.9


def test_export_is_the_live_catalog(hand_engine: Engine, model) -> None:
    hand_engine.delete(["a1"])
    hand_engine.upsert(
        EmbeddingSet(
            np.asarray(["n"], dtype=object),
            np.asarray(["a"], dtype=object),
            np.array([[9]], np.uint8),
            np.array([[0.6, 0.8]], np.float32),
            model,
        )
    )
    live = hand_engine.export()
    assert sorted(live.item_ids.tolist()) == ["a0", "a2", "a3", "b0", "b1", "n"]
    row = live.item_ids.tolist().index("n")
    assert live.codes[row, 0] == 9 and live.categories[row] == "a"
    np.testing.assert_allclose(live.vectors[row], [0.6, 0.8])
