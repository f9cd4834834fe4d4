"""The online search pipeline, end to end on a generated drop, plus its numpy parts by hand.

Why a tiny *untrained* network with recomputed batch-norm statistics: training takes minutes,
and these tests check the pipeline's behaviour (checks, routing, grouping, batching,
self-retrieval), not the model's quality. A freshly initialised network maps every photo to
nearly the same direction (cosine ~0.99); refreshing its batch-norm statistics on the catalog
(one forward pass in train mode, no gradient) centres the features, so different photos get
different embeddings and codes, as a trained model's would.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests import kit
from vsearch.contracts import CATALOG, read_table
from vsearch.errors import BadInput
from vsearch.index.release import FingerprintMismatch
from vsearch.model.export import save_model
from vsearch.model.net import VSearchNet
from vsearch.search.build import build_pipeline_for
from vsearch.search.encoder import Encoded, NetEncoder
from vsearch.search.filters import SearchFilter
from vsearch.search.fusion import align_probs, category_space, fuse, neighbour_vote, top_categories
from vsearch.search.images import decode_bytes, decode_file, decode_images
from vsearch.search.pipeline import STAGES, SearchPipeline
from vsearch.search.ranking import (
    blend_scores,
    collect_groups,
    cosine_matrix,
    group_heads,
    rank_order,
    sales_signal,
)
from vsearch.settings import Settings

SIZE = kit.TINY_NET["input_size"]
K = 5


def _tiny_net(categories: tuple[str, ...], images: torch.Tensor, seed: int) -> VSearchNet:
    net = kit.tiny_net(categories, seed=seed)
    for m in net.modules():  # see the module docstring
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
    net.train()
    with torch.no_grad():
        net(images.float() / 255.0)
    return net.eval()


def _settings(base: Settings) -> Settings:
    s = base.model_copy(deep=True)
    s.project.threads = 1
    s.index.bits = 32
    s.model.bits = 32
    s.model.input_size = SIZE
    # Unsure queries search every category: self-retrieval then never depends on the
    # untrained classifier's guess (widening itself is what these settings exercise).
    s.index.uncertain_confidence = 0.99
    s.index.max_extra_categories = 12
    return s


@pytest.fixture(scope="module")
def world(tiny_world: tuple[Path, Path], settings: Settings, tmp_path_factory):
    drop, _ = tiny_world
    catalog = read_table(drop, CATALOG)
    images = decode_images([drop / p for p in catalog["image"]], SIZE, 1)
    s = _settings(settings)
    categories = tuple(sorted(catalog["category"].unique()))
    net = _tiny_net(categories, images, seed=1)
    root = tmp_path_factory.mktemp("search")
    save_model(net, root / "model", {"name": "tiny", "version": "1"})
    encoder = NetEncoder.load(root / "model")
    pipeline = build_pipeline_for(encoder, catalog, images, s, root / "work")
    yield {
        "drop": drop,
        "catalog": catalog,
        "images": images,
        "settings": s,
        "root": root,
        "encoder": encoder,
        "pipeline": pipeline,
    }
    pipeline.close()


def _with(world: dict, **search: object) -> SearchPipeline:
    """The same encoder and release with other ``search`` settings."""
    s = world["settings"].model_copy(deep=True)
    for key, value in search.items():
        setattr(s.search, key, value)
    p = world["pipeline"]
    return SearchPipeline(p.encoder, p.engine, world["catalog"], s)


def _jpeg(size: tuple[int, int] = (120, 90)) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (b"hello, not a photo", {}, "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", {}, "not an image"),
        (b"", {}, "empty"),
        ("truncated", {}, "truncated"),
        ("jpeg", {"box": [0.1, 0.2, 1.3, 0.9]}, "box outside"),
        ("jpeg", {"box": [-0.1, 0.2, 0.3, 0.9]}, "box outside"),
        ("jpeg", {"box": [0.5, 0.2, 0.5, 0.9]}, "box is empty"),
        ("jpeg", {"box": [0.1, 0.2, 0.3]}, "box must be 4 numbers"),
        ("jpeg", {"box": ["a", 0, 1, 1]}, "box must be 4 numbers"),
        ("jpeg", {"category": "spaceships"}, "unknown category 'spaceships'"),
        ("jpeg", {"k": 0}, "k must be"),
        ("jpeg", {"k": 101}, "k must be"),
        ("jpeg", {"k": "3"}, "k must be"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(world, data, kwargs, message) -> None:
    if data == "jpeg":
        data = _jpeg()
    elif data == "truncated":
        full = _jpeg((400, 300))
        data = full[: len(full) * 2 // 3]
    kwargs.setdefault("k", K)
    with pytest.raises(BadInput, match=message):
        world["pipeline"].search_bytes(data, **kwargs)


@pytest.mark.unit
def test_size_limits_are_checked_before_decoding(world) -> None:
    small = _with(world, max_image_bytes=1000)
    with pytest.raises(BadInput, match="too large: .* bytes > max_image_bytes 1000"):
        small.search_bytes(_jpeg(), K)
    # A 3000x3000 PNG is a few kB on the wire and 27 MB once decoded: refused from its header.
    bomb = _png((3000, 3000))
    assert len(bomb) < 100_000
    tight = _with(world, max_image_pixels=1_000_000)
    with pytest.raises(BadInput, match="too many pixels: 3000x3000"):
        tight.search_bytes(bomb, K)
    assert tight.search_bytes(_png((800, 600)), K).results  # under the limit: served


@pytest.mark.unit
def test_a_batch_names_the_bad_item(world) -> None:
    with pytest.raises(BadInput, match="image 1: image is empty"):
        world["pipeline"].search_bytes_batch([_jpeg(), b""], K)


# -- decoding ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_uploads_decode_exactly_like_training_files(world) -> None:
    drop, catalog = world["drop"], world["catalog"]
    path = drop / catalog["image"].iloc[0]
    s = world["settings"].search
    up = decode_bytes(path.read_bytes(), SIZE, s.max_image_bytes, s.max_image_pixels)
    assert np.array_equal(up, decode_file(path, SIZE))
    assert np.array_equal(up, world["images"][0].numpy())  # what the index was built from


# -- search behaviour ------------------------------------------------------------------------


@pytest.mark.unit
def test_a_catalog_photo_finds_its_own_listing_first(world) -> None:
    p, catalog, images = world["pipeline"], world["catalog"], world["images"]
    rows = np.arange(0, len(catalog), 8)
    ranked = p.search_images(images[rows], K)
    plain = p.search_images(images[rows], K, rank=False)
    for row, r, q in zip(rows, ranked, plain, strict=True):
        own = catalog["item_id"].iloc[row]
        assert q.results[0].item_id == own
        assert q.results[0].hamming == 0
        top = r.results[0]
        assert top.item_id == own or own in top.more_sellers
    # Through the whole service path: file bytes → decode → model → search.
    for row in rows[:3]:
        data = (world["drop"] / catalog["image"].iloc[row]).read_bytes()
        res = p.search_bytes(data, K, rank=False)
        assert res.results[0].item_id == catalog["item_id"].iloc[row]


@pytest.mark.unit
def test_results_are_at_most_k_groups_of_near_duplicates(world) -> None:
    threshold = 0.6  # low enough that the tiny net's near neighbours do group
    p = _with(world, group_similarity=threshold)
    engine = p.engine
    responses = p.search_images(world["images"][:40], K)
    grouped = 0
    for r in responses:
        assert 1 <= len(r.results) <= K
        ids = [h.item_id for h in r.results] + [m for h in r.results for m in h.more_sellers]
        assert len(ids) == len(set(ids)), "a listing appears twice"
        scores = [h.score for h in r.results]
        assert scores == sorted(scores, reverse=True)
        for h in r.results:
            if h.more_sellers:
                grouped += 1
                vecs = engine.vectors(engine.lookup([h.item_id, *h.more_sellers]))
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                assert (vecs[1:] @ vecs[0] >= threshold - 1e-5).all()
    assert grouped > 0, "no group formed: the test would not notice broken grouping"
    strict = _with(world, group_similarity=1.0)  # nothing is a duplicate: k separate listings
    for r in strict.search_images(world["images"][:5], K):
        assert len(r.results) == K and not any(h.more_sellers for h in r.results)


@pytest.mark.unit
def test_the_final_score_is_similarity_plus_bounded_bonus(world) -> None:
    p = world["pipeline"]
    s = p.settings.search
    r = p.search_images(world["images"][:3], K)
    cat = world["catalog"].set_index("item_id")
    for res in r:
        for h in res.results:
            row = cat.loc[h.item_id]
            assert h.quality == pytest.approx(row["quality"]) and h.sales == row["sales"]
            bonus = (
                s.weight_quality * row["quality"]
                + s.weight_sales * sales_signal(np.array([row["sales"]]), s.sales_saturation)[0]
            )
            assert h.score == pytest.approx(h.similarity + bonus, abs=1e-5)
    plain = p.search_images(world["images"][:3], K, rank=False)
    for res in plain:
        sims = [h.similarity for h in res.results]
        assert sims == sorted(sims, reverse=True)
        assert all(h.score == h.similarity and not h.more_sellers for h in res.results)


@pytest.mark.unit
def test_a_chosen_category_searches_only_its_partition(world) -> None:
    p, catalog = world["pipeline"], world["catalog"]
    target = "hat"
    others = np.flatnonzero(catalog["category"].to_numpy() != target)[:6]
    responses = p.search_images(world["images"][others], K, categories=[target] * len(others))
    for r in responses:
        assert r.searched_categories == [target]
        assert r.category == target and r.category_forced and r.confidence == 1.0
        assert r.results and all(h.category == target for h in r.results)
        members = [m for h in r.results for m in h.more_sellers]
        assert set(catalog.set_index("item_id").loc[members, "category"]) <= {target}


@pytest.mark.unit
def test_unsure_queries_search_runner_up_categories(world) -> None:
    p = world["pipeline"]
    threshold = p.engine.uncertain_confidence
    responses = p.search_images(world["images"][:30], K)
    unsure = [r for r in responses if r.confidence < threshold]
    assert unsure, "the untrained model should be unsure somewhere"
    for r in unsure:
        assert len(r.searched_categories) > 1
        assert r.searched_categories[0] == r.category
        probs = [r.category_probs.get(c) for c in r.searched_categories]
        known = [x for x in probs if x is not None]
        assert known == sorted(known, reverse=True)  # most probable first
        assert {h.category for h in r.results} <= set(r.searched_categories)
    assert any(len({h.category for h in r.results}) > 1 for r in unsure)


@pytest.mark.unit
def test_category_report_and_box(world) -> None:
    p = world["pipeline"]
    r = p.search_images(world["images"][:4], K)[0]
    assert r.model_category in p.encoder.categories
    assert r.vote_category in p.engine.categories
    assert len(r.category_probs) == p.settings.search.report_categories
    assert r.category == next(iter(r.category_probs))
    assert r.confidence == pytest.approx(r.category_probs[r.category])
    x0, y0, x1, y1 = r.box
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    given = p.search_bytes(_jpeg(), K, box=[0.1, 0.2, 0.6, 0.7])
    assert given.box == pytest.approx([0.1, 0.2, 0.6, 0.7]) and given.box_score == 1.0
    d = given.to_dict()
    assert d["results"][0]["item_id"] == given.results[0].item_id


@pytest.mark.unit
def test_every_stage_is_timed(world) -> None:
    drop, catalog = world["drop"], world["catalog"]
    r = world["pipeline"].search_bytes((drop / catalog["image"].iloc[0]).read_bytes(), K)
    assert set(r.timings_ms) == set(STAGES)
    assert all(np.isfinite(v) and v >= 0 for v in r.timings_ms.values())
    parts = sum(v for key, v in r.timings_ms.items() if key != "total")
    assert r.timings_ms["total"] == pytest.approx(parts, rel=1e-6)
    assert r.timings_ms["decode"] > 0 and r.timings_ms["model"] > 0


@pytest.mark.unit
def test_batch_and_single_queries_agree(world) -> None:
    p = world["pipeline"]
    enc = p.encoder.encode(world["images"][:8])
    forced = [None, "hat", None, None, "lamp", None, None, None]

    def key(r):
        return (
            r.category,
            r.searched_categories,
            [(h.item_id, h.more_sellers, round(h.score, 5)) for h in r.results],
        )

    batch = p.search_encoded(enc, K, forced)
    single = [p.search_encoded(enc.take([i]), K, [forced[i]])[0] for i in range(len(enc))]
    assert [key(r) for r in batch] == [key(r) for r in single]
    drop, catalog = world["drop"], world["catalog"]
    files = [(drop / catalog["image"].iloc[i]).read_bytes() for i in range(3)]
    boxes = [None, [0.1, 0.1, 0.9, 0.9], None]
    many = p.search_bytes_batch(files, K, boxes)
    one = [p.search_bytes(f, K, box=b) for f, b in zip(files, boxes, strict=True)]
    assert [r.results[0].item_id for r in many] == [r.results[0].item_id for r in one]
    assert many[1].box == pytest.approx(boxes[1]) and one[1].box == pytest.approx(boxes[1])


@pytest.mark.unit
def test_mixed_boxes_in_one_batch_match_separate_calls(world) -> None:
    enc, images = world["encoder"], world["images"][:4]
    boxes = np.full((4, 4), np.nan, dtype=np.float32)
    boxes[[0, 2]] = [0.1, 0.1, 0.8, 0.9]
    mixed = enc.encode(images, boxes)
    given = enc.encode(images[[0, 2]], boxes[[0, 2]])
    found = enc.encode(images[[1, 3]])
    assert np.allclose(mixed.embeddings[[0, 2]], given.embeddings, atol=1e-5)
    assert np.allclose(mixed.embeddings[[1, 3]], found.embeddings, atol=1e-5)
    assert np.allclose(mixed.boxes[[0, 2]], boxes[[0, 2]])


@pytest.mark.unit
def test_open_checks_the_model_fingerprint(world) -> None:
    root, s = world["root"], world["settings"]
    with SearchPipeline.open(
        s, root / "model", root / "work" / "indexes", world["drop"], writable=False
    ) as opened:
        data = (world["drop"] / world["catalog"]["image"].iloc[0]).read_bytes()
        res = opened.search_bytes(data, K, rank=False)
        assert res.results[0].item_id == world["catalog"]["item_id"].iloc[0]
    other = _tiny_net(tuple(world["encoder"].categories), world["images"][:16], seed=2)
    save_model(other, root / "other")
    with pytest.raises(FingerprintMismatch):
        SearchPipeline.open(
            s, root / "other", root / "work" / "indexes", world["drop"], writable=False
        )
    with pytest.raises(FingerprintMismatch, match="rebuild the index"):
        SearchPipeline(
            NetEncoder.load(root / "other"), world["pipeline"].engine, world["catalog"], s
        )


@pytest.mark.unit
def test_listings_without_metadata_are_still_served(world) -> None:
    p = world["pipeline"]
    catalog = world["catalog"]
    partial = SearchPipeline(p.encoder, p.engine, catalog.iloc[1:], p.settings)
    r = partial.search_images(world["images"][:1], K, rank=False)[0]
    top = r.results[0]
    assert top.item_id == catalog["item_id"].iloc[0] and top.title == ""
    assert r.to_dict()["results"][0]["price"] is None
    partial.update_catalog(catalog.iloc[:1])
    again = partial.search_images(world["images"][:1], K, rank=False)[0]
    assert again.results[0].title == catalog["title"].iloc[0]


# -- fusion by hand ---------------------------------------------------------------------------


@pytest.mark.unit
def test_neighbour_vote_weights_by_similarity() -> None:
    cats = np.array([["a", "b", "a", None], ["c", "c", "b", "a"]], dtype=object)
    sims = np.array([[0.9, 0.6, 0.3, np.nan], [0.5, -0.2, 0.5, 0.0]])
    vote, support = neighbour_vote(cats, sims, ["a", "b", "c"])
    # row 0: a = 0.9 + 0.3 = 1.2, b = 0.6 → /1.8 ; row 1: c = 0.5 (the -0.2 does not vote),
    # b = 0.5, a = 0 → /1.0
    assert np.allclose(vote, [[1.2 / 1.8, 0.6 / 1.8, 0.0], [0.0, 0.5, 0.5]])
    assert np.allclose(support, [1.8, 1.0])
    empty, none = neighbour_vote(np.full((1, 2), None, object), np.full((1, 2), np.nan), "ab")
    assert np.allclose(empty, [[0.5, 0.5]]) and none[0] == 0


@pytest.mark.unit
def test_neighbour_vote_with_a_temperature_by_hand() -> None:
    cats = np.array([["a", "b", "b", None]], dtype=object)
    sims = np.array([[0.9, 0.85, 0.85, np.nan]])
    vote, support = neighbour_vote(cats, sims, ["a", "b"], temperature=0.05)
    w = np.exp(-0.05 / 0.05)  # each b is 0.05 below the best neighbour: weight e^-1
    assert np.allclose(vote, [[1 / (1 + 2 * w), 2 * w / (1 + 2 * w)]])
    assert np.isclose(support[0], 1 + 2 * w)
    assert vote[0, 0] > vote[0, 1]  # linear weights would let the two look-alikes win
    assert neighbour_vote(cats, sims, ["a", "b"])[0][0, 1] > 0.5
    with pytest.raises(ValueError):
        neighbour_vote(cats, sims, ["a", "b"], temperature=0.0)


@pytest.mark.unit
def test_fuse_and_align_by_hand() -> None:
    names = category_space(["a", "b"], ["b", "c"])
    assert names == ["a", "b", "c"]
    cls = align_probs(np.array([[0.8, 0.2]]), ["a", "b"], names)
    assert np.allclose(cls, [[0.8, 0.2, 0.0]])
    vote = np.array([[0.0, 0.25, 0.75]])
    fused = fuse(cls, vote, 0.25)
    assert np.allclose(fused, [[0.2, 0.05 + 0.1875, 0.5625]])
    assert np.allclose(fused.sum(axis=1), 1.0)
    assert np.allclose(fuse(None, vote, 0.25), vote)  # no classifier: the vote alone
    assert top_categories(fused, names, 2) == [
        {"c": pytest.approx(0.5625), "b": pytest.approx(0.2375)}
    ]
    with pytest.raises(ValueError, match="fusion weight"):
        fuse(cls, vote, 1.5)


# -- ranking by hand --------------------------------------------------------------------------


@pytest.mark.unit
def test_blend_scores_by_hand() -> None:
    assert np.allclose(
        sales_signal(np.array([0, 9, 99, 10_000, -3]), 99),
        [0.0, np.log(10) / np.log(100), 1.0, 1.0, 0.0],
    )
    sim = np.array([[0.9, 0.88, np.nan]])
    quality = np.array([[0.0, 1.0, 1.0]])
    sales = np.array([[0, 99, 99]])
    scores = blend_scores(sim, quality, sales, 0.03, 0.02, 99)
    assert np.allclose(scores[0, :2], [0.9, 0.88 + 0.03 + 0.02]) and np.isnan(scores[0, 2])
    assert rank_order(scores).tolist() == [[1, 0, 2]]  # the bonus passes a 0.02 gap, NaN last
    far = blend_scores(
        np.array([[0.9, 0.8]]), np.array([[0.0, 1.0]]), np.array([[0, 99]]), 0.03, 0.02, 99
    )
    assert rank_order(far).tolist() == [[0, 1]]  # ... but never a 0.1 gap


@pytest.mark.unit
def test_grouping_by_hand() -> None:
    # Candidates in rank order: 0 ~ 1 (0.95), 1 ~ 2 (0.95) but 0 vs 2 only 0.8, 3 ~ 0 (0.92).
    cos = np.eye(5)
    for i, j, c in [(0, 1, 0.95), (1, 2, 0.95), (0, 2, 0.8), (0, 3, 0.92), (2, 3, 0.5)]:
        cos[i, j] = cos[j, i] = c
    valid = np.array([[True, True, True, True, False]])
    heads = group_heads(cos[None], valid, 0.9)
    # 1 joins 0; 2 is near 1 but 1 is no head, and 0 is too far: 2 starts a group; 3 joins 0.
    assert heads.tolist() == [[0, 0, 2, 0, -1]]
    assert collect_groups(heads, 5) == [[(0, [1, 3]), (2, [])]]
    assert collect_groups(heads, 1) == [[(0, [1, 3])]]
    v = np.array([[[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]])
    assert np.allclose(cosine_matrix(v)[0], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


@pytest.mark.unit
def test_encoded_take_and_concat_round_trip() -> None:
    rng = np.random.default_rng(0)
    enc = Encoded(
        rng.random((4, 3), dtype=np.float32),
        rng.random((4, 4), dtype=np.float32),
        rng.random(4, dtype=np.float32),
        rng.random((4, 8), dtype=np.float32),
        rng.integers(0, 255, (4, 2), dtype=np.uint8),
    )
    again = Encoded.concat([enc.take(slice(0, 1)), enc.take(slice(1, 4))])
    assert all(
        np.array_equal(getattr(enc, f), getattr(again, f)) for f in Encoded.__dataclass_fields__
    )


# -- engine vectors (grouping input) and the CLI ----------------------------------------------


@pytest.mark.unit
def test_engine_vectors_are_the_indexed_embeddings(world, tmp_path: Path) -> None:
    from vsearch.index.builder import build_release
    from vsearch.index.embeddings import EmbeddingSet
    from vsearch.index.engine import Engine

    p, catalog = world["pipeline"], world["catalog"]
    enc = p.encoder.encode(world["images"][:6])
    got = p.engine.vectors(p.engine.lookup(catalog["item_id"].iloc[:6].tolist()))
    assert np.allclose(got, enc.embeddings, atol=0.05)  # int8 re-rank store: one step off
    # Live upserts keep their exact vectors.
    s = world["settings"]
    emb = EmbeddingSet(
        np.array(["x0", "x1", "x2"], dtype=object),
        np.array(["a", "a", "b"], dtype=object),
        enc.codes[:3],
        enc.embeddings[:3],
    )
    build_release(emb, s.index, tmp_path)
    with Engine.open_current(tmp_path, s.index) as engine:
        engine.upsert(
            EmbeddingSet(
                np.array(["y"], dtype=object),
                np.array(["c"], dtype=object),
                enc.codes[3:4],
                enc.embeddings[3:4],
            )
        )
        vec = engine.vectors(engine.lookup(["y", "x1"]))
        assert np.allclose(vec[0], enc.embeddings[3])
        assert np.allclose(vec[1], enc.embeddings[1], atol=0.05)


@pytest.mark.unit
def test_cli_search_prints_the_response(world) -> None:
    import json

    from typer.testing import CliRunner

    from vsearch.cli import app

    root, catalog = world["root"], world["catalog"]
    image = world["drop"] / catalog["image"].iloc[0]
    common = ["--model", str(root / "model"), "--drop", str(world["drop"])]
    common += ["--indexes", str(root / "work" / "indexes")]
    runner = CliRunner()
    res = runner.invoke(app, ["search", str(image), "--k", "3", "--plain", "--json", *common])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["results"][0]["item_id"] == catalog["item_id"].iloc[0]
    assert len(out["results"]) == 3 and set(out["timings_ms"]) == set(STAGES)
    assert out["candidate"] == 0 and out["box"] == out["candidates"][0]["box"]
    bad = runner.invoke(app, ["search", str(image), "--k", "0", *common])
    assert bad.exit_code == 2 and "k must be" in bad.output
    bad = runner.invoke(app, ["search", str(image), "--candidate", "99", *common])
    assert bad.exit_code == 2 and "candidate must be an integer" in bad.output
    # The service's filters, applied inside the search.
    seller, listings, _ = _spread_seller(catalog)
    k = str(len(listings))
    res = runner.invoke(
        app, ["search", str(image), "--k", k, "--plain", "--json", "--seller", seller, *common]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {h["item_id"] for h in out["results"]} == listings
    assert out["filters"] == {"seller": [seller]}
    lo, hi = (str(x) for x in catalog["price"].quantile([0.2, 0.6]))
    res = runner.invoke(
        app, ["search", str(image), "--price-min", lo, "--price-max", hi, "--json", *common]
    )
    assert res.exit_code == 0, res.output
    assert all(float(lo) <= h["price"] <= float(hi) for h in json.loads(res.stdout)["results"])
    bad = runner.invoke(
        app, ["search", str(image), "--price-min", "9", "--price-max", "1", *common]
    )
    assert bad.exit_code == 2 and "price_min 9.0 is above price_max 1.0" in bad.output


@pytest.mark.unit
def test_an_explicit_category_list_replaces_routing(world) -> None:
    p = world["pipeline"]
    every = p.engine.categories
    two = ["hat", "lamp"]
    r_all, r_two = p.search_images(world["images"][:2], K, categories=[every, two], rank=False)
    assert r_all.searched_categories == every and not r_all.category_forced
    assert r_all.results[0].item_id == world["catalog"]["item_id"].iloc[0]
    assert r_two.searched_categories == two and {h.category for h in r_two.results} <= set(two)
    assert r_two.category == next(iter(r_two.category_probs))  # still the fused category
    with pytest.raises(BadInput, match="unknown category 'nope'"):
        p.search_images(world["images"][:1], K, categories=[["hat", "nope"]])
    with pytest.raises(BadInput, match="must not be empty"):
        p.search_images(world["images"][:1], K, categories=[[]])


@pytest.mark.unit
def test_listings_of_one_virtual_id_group_even_when_dissimilar(world, tmp_path) -> None:
    """Clicks (virtual IDs), not embedding similarity, say which listings are one product."""
    from vsearch.search.groups import PRODUCT_GROUP, with_product_groups

    plain = _with(world, group_similarity=1.0)
    first = plain.search_images(world["images"][:1], K)[0]
    ids = [h.item_id for h in first.results]
    assert len(ids) == K and not any(h.more_sellers for h in first.results)
    # A hand-made mining output: results 2 and 5 (not near-duplicates) are one virtual ID.
    vids = pd.DataFrame(
        {"item_id": [ids[1], ids[4]], "virtual_id": ["v:x", "v:x"], "cluster_size": [2, 2]}
    )
    kit.write_mining_outputs(tmp_path, virtual_ids=vids)
    catalog = with_product_groups(world["catalog"], tmp_path)
    assert catalog.set_index("item_id").loc[ids[1], PRODUCT_GROUP] == "v:x"
    s = plain.settings
    grouped = SearchPipeline(plain.encoder, plain.engine, catalog, s)
    r = grouped.search_images(world["images"][:1], K)[0]
    heads = [h.item_id for h in r.results]
    assert ids[4] not in heads
    assert r.results[heads.index(ids[1])].more_sellers == [ids[4]]
    assert with_product_groups(world["catalog"], None) is world["catalog"]


@pytest.mark.unit
def test_calibrated_fusion_weight_by_hand() -> None:
    from vsearch.search.fusion import calibrate_weight

    cls = np.array([[0.6, 0.4], [0.45, 0.55], [0.9, 0.1]], np.float32)
    vote = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], np.float32)
    labels = np.array([0, 0, 0])
    # w=0: vote alone, rows 1, 2 right; w=1: classifier alone, rows 0, 2 right; w=0.5: row 0
    # 0.3 vs 0.7 (wrong), row 1 0.725 vs 0.275, row 2: 2/3 each. Ties go to the larger weight.
    w, acc = calibrate_weight(cls, vote, labels, [0.0, 0.5, 1.0])
    assert acc == {0.0: pytest.approx(2 / 3), 0.5: pytest.approx(2 / 3), 1.0: pytest.approx(2 / 3)}
    assert w == 1.0
    # w=0.2: row 0 0.12 vs 0.88 (wrong), rows 1, 2 right; w=0.9: row 0 0.54 vs 0.46, row 1
    # 0.505 vs 0.495, row 2: all right.
    w, acc = calibrate_weight(cls, vote, labels, [0.2, 0.9])
    assert acc == {0.2: pytest.approx(2 / 3), 0.9: 1.0} and w == 0.9
    with pytest.raises(ValueError):
        calibrate_weight(cls[:0], vote[:0], labels[:0], [0.5])


@pytest.mark.unit
def test_calibrated_vote_temperature_by_hand() -> None:
    from vsearch.search.fusion import calibrate_fusion

    cls = np.array([[0.6, 0.4], [0.6, 0.4], [0.6, 0.4]], np.float32)  # always column 0
    sharp = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], np.float32)  # rows 0, 1 right
    crowd = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], np.float32)  # says nothing
    labels = np.array([1, 1, 0])
    # the sharp vote outweighs the classifier below w = 0.625 (rows 0, 1: 0.4w + (1 - w) vs
    # 0.6w): all right at 0 and 0.5 (ties to the larger weight); the crowd's vote never helps
    w, t, acc = calibrate_fusion(cls, {0.2: crowd, 0.02: sharp}, labels, [0.0, 0.5, 1.0])
    assert (w, t, acc) == (0.5, 0.02, 1.0)
    # equal accuracy: the preferred (configured) temperature wins, else the first given
    w, t, acc = calibrate_fusion(cls, {0.2: crowd, 0.05: crowd}, labels, [1.0], prefer=0.05)
    assert (t, acc) == (0.05, pytest.approx(1 / 3))
    assert calibrate_fusion(cls, {0.2: crowd, 0.05: crowd}, labels, [1.0])[1] == 0.2
    with pytest.raises(ValueError, match="temperature"):
        calibrate_fusion(cls, {}, labels, [1.0])


@pytest.mark.unit
def test_the_release_calibration_overrides_params(world) -> None:
    p = _with(world)
    assert p.fusion_weight == p.settings.search.fusion_weight
    assert p.vote_temperature == p.settings.search.vote_temperature
    p.engine.manifest.calibration = {"fusion_weight": 0.2, "vote_temperature": 0.1}
    try:
        assert p.fusion_weight == 0.2 and p.vote_temperature == 0.1
        p.fusion_weight = 0.9  # an explicit setting wins (evaluation calibrating)
        p.vote_temperature = 0.02
        assert p.fusion_weight == 0.9 and p.vote_temperature == 0.02
        p.engine.manifest.calibration = {"fusion_weight": 0.2}  # a release from before
        p.vote_temperature = None
        assert p.vote_temperature == p.settings.search.vote_temperature
    finally:
        p.engine.manifest.calibration = None


# -- phone photos ------------------------------------------------------------------------------


def _phone_version(path: Path) -> bytes:
    """A catalog photo as a phone stores it: pixels turned left, EXIF Orientation 6."""
    from vsearch.search.images import EXIF_ORIENTATION

    with Image.open(path) as img:
        stored = img.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.unit
def test_a_rotated_phone_photo_with_a_drawn_box_finds_its_listing(world) -> None:
    p, catalog = world["pipeline"], world["catalog"]
    for row in (0, 9, 18):
        own = catalog["item_id"].iloc[row]
        path = world["drop"] / catalog["image"].iloc[row]
        upright = p.search_bytes(path.read_bytes(), K, rank=False)
        assert upright.results[0].item_id == own
        phone = _phone_version(path)
        assert p.search_bytes(phone, K, rank=False).results[0].item_id == own
        # The box found on the upright photo, drawn on the phone photo as displayed.
        drawn = p.search_bytes(phone, K, box=upright.box, rank=False)
        assert drawn.box == pytest.approx(upright.box)
        assert drawn.results[0].item_id == own
        assert drawn.results[0].similarity == pytest.approx(upright.results[0].similarity, abs=0.02)


# -- filters -----------------------------------------------------------------------------------


def _spread_seller(catalog: pd.DataFrame) -> tuple[str, set[str], set[str]]:
    """The seller with the fewest listings among those listing in several categories."""
    stats = catalog.groupby("seller_id")["category"].agg(["size", "nunique"])
    seller = str(stats[(stats["nunique"] > 1) & (stats["size"] >= 2)].sort_values("size").index[0])
    mine = catalog[catalog["seller_id"] == seller]
    return seller, set(mine["item_id"]), set(mine["category"])


@pytest.mark.unit
def test_a_narrow_filter_returns_k_matching_listings(world) -> None:
    p, catalog, images = world["pipeline"], world["catalog"], world["images"]
    seller, listings, categories = _spread_seller(catalog)
    k = len(listings)
    rows = np.flatnonzero(catalog["seller_id"].to_numpy() != seller)[:6]
    f = [SearchFilter(sellers=(seller,))] * len(rows)
    engine = p.engine
    saved = engine.uncertain_confidence
    engine.uncertain_confidence = 0.0  # route to one category: the filter has to widen it
    try:
        plain = p.search_images(images[rows], k, rank=False, filters=f)
        ranked = p.search_images(images[rows], k, filters=f)
        unfiltered = p.search_images(images[rows], k, rank=False)
    finally:
        engine.uncertain_confidence = saved
    for r in plain:
        assert len(r.results) == k and {h.item_id for h in r.results} == listings
        assert categories <= set(r.searched_categories)
        assert r.filters == {"seller": [seller]}
    for r in ranked:
        assert {i for h in r.results for i in (h.item_id, *h.more_sellers)} == listings
    # Dropping rows from an unfiltered top-k would have missed some of them.
    assert any(len({h.item_id for h in r.results} & listings) < k for r in unfiltered)


@pytest.mark.unit
def test_price_range_and_in_stock_filters(world) -> None:
    base, images = world["pipeline"], world["images"]
    catalog = world["catalog"].copy()
    stock = np.where(np.arange(len(catalog)) % 3 == 0, 0, 5)
    catalog["stock"] = pd.array(stock, dtype="Int64")
    catalog.loc[1, "stock"] = pd.NA  # unknown stock: passes an in-stock filter
    p = SearchPipeline(base.encoder, base.engine, catalog, world["settings"])
    lo, hi = np.quantile(catalog["price"], [0.3, 0.45])
    in_range = catalog[(catalog["price"] >= lo) & (catalog["price"] <= hi)]
    assert K <= len(in_range) < len(catalog) / 2
    price = SearchFilter(price_min=float(lo), price_max=float(hi))
    for r in p.search_images(images[:6], K, rank=False, filters=[price] * 6):
        assert len(r.results) == K
        assert all(lo <= h.price <= hi for h in r.results)
    stocked = SearchFilter(in_stock=True)
    out = set(catalog.loc[catalog["stock"].eq(0).fillna(False), "item_id"])
    rows = [0, 3, 6, 1]  # three out-of-stock listings' own photos, then the unknown one
    res = p.search_images(images[rows], K, rank=False, filters=[stocked] * len(rows))
    for r in res:
        assert len(r.results) == K and not {h.item_id for h in r.results} & out
    assert res[-1].results[0].item_id == catalog["item_id"].iloc[1]
    # A batch mixing filtered and unfiltered queries answers each as if alone.
    mixed = p.search_images(images[:2], K, rank=False, filters=[price, None])
    alone = p.search_images(images[1:2], K, rank=False)[0]
    assert [h.item_id for h in mixed[1].results] == [h.item_id for h in alone.results]
    assert all(lo <= h.price <= hi for h in mixed[0].results)


@pytest.mark.unit
def test_bad_filters_are_refused(world) -> None:
    p = world["pipeline"]
    with pytest.raises(BadInput, match=r"unknown seller\(s\) \['nobody'\]"):
        p.search_bytes(_jpeg(), K, filters=SearchFilter(sellers=("nobody",)))
    with pytest.raises(BadInput, match="filters has 1 entries for 2 queries"):
        p.search_images(world["images"][:2], K, filters=[None])
    with pytest.raises(BadInput, match="price_min 9.0 is above price_max 1.0"):
        SearchFilter(price_min=9.0, price_max=1.0)


# -- candidate boxes (several objects in one photo) -------------------------------------------


def _two_products(world: dict) -> bytes:
    """Two catalog photos side by side in one JPEG (a photo showing two products)."""
    drop, catalog = world["drop"], world["catalog"]
    left = Image.open(drop / catalog["image"].iloc[0]).convert("RGB").resize((160, 160))
    right = Image.open(drop / catalog["image"].iloc[7]).convert("RGB").resize((160, 160))
    both = Image.new("RGB", (320, 160))
    both.paste(left, (0, 0))
    both.paste(right, (160, 0))
    buf = io.BytesIO()
    both.save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.mark.unit
def test_every_response_lists_candidates_and_searches_the_best(world) -> None:
    p = _with(world, proposals=4, proposal_iou=0.9, proposal_min_score=0.0)
    data = _two_products(world)
    r = p.search_bytes(data, K)
    assert 2 <= len(r.candidates) <= 4
    scores = [c["score"] for c in r.candidates]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert r.candidate == 0
    assert r.box == pytest.approx(r.candidates[0]["box"]) and r.box_score == scores[0]
    # The best candidate is what the search without candidates used (same box, same results).
    off = _with(world, proposals=0).search_bytes(data, K)
    assert off.candidates == [] and off.candidate is None
    assert off.box == r.box and [h.item_id for h in off.results] == [h.item_id for h in r.results]


@pytest.mark.unit
def test_the_caller_picks_another_candidate_or_draws_a_box(world) -> None:
    p = _with(world, proposals=4, proposal_iou=0.9, proposal_min_score=0.0)
    data = _two_products(world)
    first = p.search_bytes(data, K)
    other = p.search_bytes(data, K, candidate=1)
    assert other.candidate == 1 and other.candidates == first.candidates
    assert other.box == pytest.approx(first.candidates[1]["box"])
    assert other.box_score == pytest.approx(first.candidates[1]["score"])
    # Searching candidate 1 is searching its box (what the page sends when a user drags it).
    drawn = p.search_bytes(data, K, box=first.candidates[1]["box"])
    assert drawn.candidate is None and drawn.box_score == 1.0
    assert drawn.candidates == first.candidates
    assert [h.item_id for h in drawn.results] == [h.item_id for h in other.results]
    # Batches mix choices; each photo gets its own.
    many = p.search_bytes_batch([data, data, data], K, candidates=[None, 1, 0])
    assert [r.candidate for r in many] == [0, 1, 0]
    assert many[1].box == pytest.approx(other.box)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidate": 4}, r"candidate must be an integer in \[0, 3\]"),
        ({"candidate": -1}, r"candidate must be an integer in \[0, 3\]"),
        ({"candidate": True}, "candidate must be an integer"),
        ({"candidate": "1"}, "candidate must be an integer"),
        ({"candidate": 1, "box": [0.1, 0.1, 0.5, 0.5]}, "give a box or a candidate, not both"),
    ],
)
def test_bad_candidate_choices_are_refused(world, kwargs, message) -> None:
    p = _with(world, proposals=4)
    with pytest.raises(BadInput, match=message):
        p.search_bytes(_jpeg(), K, **kwargs)


@pytest.mark.unit
def test_a_candidate_the_photo_does_not_have_is_refused(world) -> None:
    from vsearch.errors import NoSuchCandidate

    only_best = _with(world, proposals=3, proposal_min_score=1.0)
    with pytest.raises(NoSuchCandidate, match="image 1: candidate 2 asked for, it has 1"):
        only_best.search_bytes_batch([_jpeg(), _jpeg()], K, candidates=[0, 2])
    with pytest.raises(BadInput, match="proposes no candidate boxes"):
        _with(world, proposals=0).search_bytes(_jpeg(), K, candidate=0)


@pytest.mark.unit
def test_the_second_look_is_searched_beside_the_first(world) -> None:
    """With ``search.second_look`` the detector looks again inside the searched box (grown);
    both crops are searched and each result keeps the better of its two similarities."""
    from vsearch.model.net import grow_boxes

    on, off = _with(world, second_look=0.25), _with(world, second_look=None)
    data = _two_products(world)
    r_on, r_off = on.search_bytes(data, K), off.search_bytes(data, K)
    assert r_off.second_box is None and r_on.second_box is not None
    assert r_on.box == pytest.approx(r_off.box)  # the first look is the same
    grown = grow_boxes(torch.tensor([r_on.box]), 0.25)[0].tolist()
    x0, y0, x1, y1 = r_on.second_box
    assert grown[0] - 1e-6 <= x0 < x1 <= grown[2] + 1e-6
    assert grown[1] - 1e-6 <= y0 < y1 <= grown[3] + 1e-6
    enc = on.encode(torch.from_numpy(on.decode(data))[None])
    assert len(enc.looks) == 2
    assert enc.looks[0].boxes[0].tolist() == pytest.approx(r_on.box)
    assert enc.looks[1].boxes[0].tolist() == pytest.approx(r_on.second_box)
    catalog = world["encoder"].encode(world["images"]).embeddings
    row = {item: i for i, item in enumerate(world["catalog"]["item_id"].astype(str))}
    for hit in r_on.results:
        sims = [float(look.embeddings[0] @ catalog[row[hit.item_id]]) for look in enc.looks]
        assert hit.similarity == pytest.approx(max(sims), abs=0.02)
    # A caller's box gets the second look too, inside that box.
    boxed = on.search_bytes(data, K, box=[0.0, 0.0, 0.5, 1.0])
    assert boxed.box == [0.0, 0.0, 0.5, 1.0] and boxed.second_box[2] <= 0.625 + 1e-6
