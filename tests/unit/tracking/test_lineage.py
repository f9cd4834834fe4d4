"""Lineage: data inputs hashed the way DVC versions them, the Prefect flow run found."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vsearch.tracking.lineage import current_flow_run_id, input_hash

pytestmark = pytest.mark.unit


def test_input_hash_prefers_dvc_file_then_dvc_lock_then_computes(tmp_path: Path) -> None:
    drop = tmp_path / "data" / "raw" / "d1"
    drop.mkdir(parents=True)
    (drop / "catalog.csv").write_text("item_id\n1\n")
    (tmp_path / "data" / "raw" / "d1.dvc").write_text(
        yaml.safe_dump({"outs": [{"md5": "abc.dir", "path": "d1"}]})
    )
    assert input_hash(drop, tmp_path) == ("abc.dir", "dvc")
    mining = tmp_path / "runs" / "mining"
    mining.mkdir(parents=True)
    (mining / "pairs.parquet").write_bytes(b"123")
    lock = {
        "schema": "2.0",
        "stages": {"mine": {"outs": [{"path": "runs/mining", "md5": "m.dir"}]}},
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert input_hash(mining, tmp_path) == ("m.dir", "dvc.lock")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "f").write_bytes(b"123")
    digest, source = input_hash(other, tmp_path)
    assert source == "computed" and len(digest) == 64
    (other / "f").write_bytes(b"124")
    assert input_hash(other, tmp_path)[0] != digest  # the bytes are pinned


def test_flow_run_id_comes_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    monkeypatch.setenv("VSEARCH_FLOW_RUN_ID", "from-env")
    assert current_flow_run_id("given") == "given"
    assert current_flow_run_id() == "from-env"
