"""The ``index-build`` Prefect flow on a real local Prefect server, partitions on a Dask cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import yaml

from vsearch.index.engine import Engine
from vsearch.index.manifest import Manifest
from vsearch.index.release import current_version, resolve
from vsearch.index.synthetic import SyntheticSpec, make_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _flow_runs(name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        return await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name])))


def test_index_flow_builds_partitions_on_dask(
    prefect_server: str, tmp_path: Path, params_path: Path
) -> None:
    from flows.indexing import run_index_build

    world = make_world(SyntheticSpec(items=2400, categories=4, seed=4, encoder_sample=2400))
    emb = world.catalog.save(tmp_path / "embeddings")
    raw = yaml.safe_load(params_path.read_text())
    raw["project"]["indexes_dir"] = str(tmp_path / "indexes")
    raw["index"].update(flat_max=500, ivf_list_size=25, dask_workers=2, build_threads=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))

    result = run_index_build(emb, params)

    root = tmp_path / "indexes"
    assert result["version"] == current_version(root) == "v0001"
    assert result["items"] == 2400 and len(result["partitions"]) == 4
    manifest = Manifest.read(resolve(root))
    assert manifest.source == str(emb.resolve()) and "ivf" in result["partitions"].values()
    q = world.queries(30, seed=2)
    with Engine.open_current(root, verify=True) as e:
        res = e.search(q.codes, q.vectors, [[c] for c in q.category], k=10)
    exact = world.catalog.item_ids[np.argsort(-(q.vectors @ world.catalog.vectors.T), 1)[:, :10]]
    recall = np.mean([len(set(r) & set(t)) / 10 for r, t in zip(res.item_ids, exact, strict=True)])
    assert recall > 0.85

    runs = asyncio.run(_flow_runs("index-build"))
    assert runs and runs[0].state.is_completed()
