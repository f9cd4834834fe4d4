"""``vsearch index ...``: the commands drive the library and map errors to exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from vsearch.cli import app
from vsearch.index.embeddings import EmbeddingSet

pytestmark = pytest.mark.unit


@pytest.fixture
def env(tmp_path: Path, world, params_path: Path) -> tuple[Path, Path, Path]:
    """A params.yaml whose indexes live in tmp, and an embeddings folder."""
    raw = yaml.safe_load(params_path.read_text())
    raw["project"]["indexes_dir"] = str(tmp_path / "indexes")
    raw["index"].update(
        flat_max=500,
        ivf_list_size=25,
        tune_sample=100,
        target_recall=0.8,
        tune_depths=[20, 40, 80],
        tune_nprobes=[4, 8],
        rerank_depth=40,
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    emb = world.catalog.subset(np.arange(1500)).save(tmp_path / "emb")
    return params, emb, tmp_path / "indexes"


def _run(params: Path, *args: str):
    return CliRunner().invoke(app, ["--params", str(params), "index", *args, "--json"])


def test_build_info_tune_rollback(env) -> None:
    params, emb, indexes = env
    res = _run(params, "build", "--embeddings", str(emb), "--no-catalog")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["version"] == "v0001" and out["items"] == 1500
    assert (indexes / "CURRENT").read_text().strip() == "v0001"

    res = _run(params, "tune")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["met_target"] is True

    res = _run(params, "info", "--verify")
    info = json.loads(res.stdout)
    assert res.exit_code == 0 and info["search"]["source"] == "tune" and info["verified"]
    assert info["live"]["items"] == 1500 and info["releases"] == ["v0001"]

    res = _run(params, "build", "--embeddings", str(emb), "--no-catalog", "--version", "b")
    assert res.exit_code == 0
    res = _run(params, "rollback")
    assert res.exit_code == 0 and json.loads(res.stdout)["current"] == "v0001"


def test_upsert_delete_compact(env, world, tmp_path: Path) -> None:
    params, emb, _ = env
    assert _run(params, "build", "--embeddings", str(emb), "--no-catalog").exit_code == 0
    q = world.queries(3, seed=30)
    new = EmbeddingSet(
        np.asarray(["n0", "n1", "n2"], dtype=object),
        q.category,
        q.codes,
        q.vectors,
        world.catalog.model,
    ).save(tmp_path / "new")
    res = _run(params, "upsert", "--embeddings", str(new))
    assert res.exit_code == 0 and json.loads(res.stdout)["upserted"] == 3
    res = CliRunner().invoke(
        app, ["--params", str(params), "index", "delete", "n0", "zz", "--json"]
    )
    assert res.exit_code == 0 and json.loads(res.stdout) == {
        "release": "v0001",
        "deleted": 1,
        "requested": 2,
    }
    res = _run(params, "compact")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["items"] == 1500 + 2


def test_bad_input_exits_2(env, tmp_path: Path) -> None:
    params, emb, indexes = env
    res = _run(params, "build", "--embeddings", str(tmp_path / "missing"))
    assert res.exit_code == 2 and "embeddings folder not found" in res.output
    res = _run(params, "info")
    assert res.exit_code == 2 and "vsearch index build" in res.output
    assert _run(params, "build", "--embeddings", str(emb), "--no-catalog").exit_code == 0
    (indexes / "v0001" / "codes.npy").write_bytes(b"tampered")
    res = _run(params, "info", "--verify")
    assert res.exit_code == 2 and "failed verification" in res.output


def test_build_carries_the_drops_catalog_and_info_shows_the_lineage(env, world, tmp_path) -> None:
    import pandas as pd

    from vsearch.contracts import CATALOG, write_table

    params, emb, _ = env
    n = 1500
    catalog = pd.DataFrame(
        {
            "item_id": world.catalog.item_ids[:n].astype(str),
            "category": world.catalog.categories[:n].astype(str),
            "seller_id": "s1",
            "title": "a listing",
            "price": 2.5,
            "image": "images/catalog/x.jpg",
            "listed_at": pd.Timestamp("2026-11-01", tz="UTC"),
            "quality": 0.5,
            "sales": 3,
        }
    )
    drop = tmp_path / "shop-2026-11-01"
    write_table(catalog, CATALOG, drop)
    res = _run(params, "build", "--embeddings", str(emb), "--drop", str(drop))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["data"]["catalog_rows"] == n and out["data"]["rows_per_drop"] == {drop.name: n}
    info = json.loads(_run(params, "info").stdout)
    lineage = info["lineage"]
    assert lineage["drops"] == [{"drop_id": drop.name, "dvc_hash": None, "path": str(drop)}]
    assert lineage["release"] == info["version"] and lineage["mlflow"] is None
    assert info["change_set"]["last_seq"] == 0

    small = tmp_path / "too-small"
    write_table(catalog.head(10), CATALOG, small)  # most indexed listings have no row: refused
    res = _run(params, "build", "--embeddings", str(emb), "--drop", str(small))
    assert res.exit_code == 2 and "no catalog row" in res.output
