"""Acceptance of the data layer, through the real CLI: a generated world validates and ingests;
each kind of corruption from the issue exits 2, names the failing expectation and leaves
``data/raw`` exactly as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vsearch.cli import app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
runner = CliRunner()


def _edit(table: str, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(drop: Path) -> None:
        path = drop / f"{table}.parquet"
        fn(pd.read_parquet(path)).to_parquet(path, index=False)

    return apply


def _dup_event(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[1, "event_id"] = df.loc[0, "event_id"]
    return df


def _unknown_item(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[0, "item_id"] = "no-such-item"
    return df


def _order_on_unclicked(df: pd.DataFrame) -> pd.DataFrame:
    row = df.index[~df["clicked"]][0]
    df["click_order"] = df["click_order"].astype("Int64")
    df.loc[row, "click_order"] = 5
    return df


def _future_ts(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[0, "ts"] = pd.Timestamp(datetime.now(UTC) + timedelta(days=3))
    return df


def _truncate_image(drop: Path) -> None:
    rel = pd.read_parquet(drop / "catalog.parquet")["image"].iloc[0]
    img = drop / rel
    data = img.read_bytes()
    img.unlink()  # images are hard links to the shared world: replace, never write in place
    img.write_bytes(data[: len(data) // 2])


def _string_position_csv(drop: Path) -> None:
    df = pd.read_parquet(drop / "impressions.parquet")
    df["position"] = df["position"].astype(str)
    df.loc[0, "position"] = "abc"
    (drop / "impressions.parquet").unlink()
    df.to_csv(drop / "impressions.csv", index=False)


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "duplicated event id": (_edit("impressions", _dup_event), "event_id"),
    "impression for unknown item": (_edit("impressions", _unknown_item), "item_id"),
    "click_order on unclicked row": (_edit("impressions", _order_on_unclicked), "click_order"),
    "future timestamp": (_edit("impressions", _future_ts), "ts"),
    "truncated image": (_truncate_image, "image"),
    "missing column": (_edit("catalog", lambda d: d.drop(columns=["price"])), "price"),
    "string in position": (_string_position_csv, "position"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, params_path: Path) -> Path:
    out = tmp_path_factory.mktemp("acceptance") / "D"
    res = runner.invoke(
        app,
        [
            "--params",
            str(params_path),
            "world",
            "--out",
            str(out),
            "--items",
            "2000",
            "--queries",
            "500",
            "--seed",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    return out


def _raw_listing(repo: Path) -> list[tuple[str, int]]:
    raw = repo / "data" / "raw"
    return sorted(
        (str(p.relative_to(raw)), p.stat().st_size) for p in raw.rglob("*") if p.is_file()
    )


def test_world_validates_ingests_and_every_corruption_is_refused(
    world: Path,
    scratch_repo: Path,
    params_path: Path,
    tmp_path: Path,
    copy_drop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(scratch_repo)
    params = ["--params", str(params_path)]
    res = runner.invoke(app, [*params, "validate", str(world)])
    assert res.exit_code == 0, res.output

    res = runner.invoke(app, [*params, "ingest", str(world), "--json"])
    assert res.exit_code == 0, res.output
    before = _raw_listing(scratch_repo)
    assert before, "the good drop must be in data/raw"

    for name, (corrupt, column) in CORRUPTIONS.items():
        bad = copy_drop(world, tmp_path / name.replace(" ", "_"))
        manifest = json.loads((bad / "drop.json").read_text())
        manifest["drop_id"] = bad.name  # a new id: "already ingested" must not be why it fails
        (bad / "drop.json").write_text(json.dumps(manifest))
        corrupt(bad)
        res = runner.invoke(app, [*params, "ingest", str(bad)])
        assert res.exit_code == 2, f"{name}: exit {res.exit_code}\n{res.output}"
        assert "expect" in res.output and column in res.output, f"{name}:\n{res.output}"
        assert _raw_listing(scratch_repo) == before, f"{name}: data/raw changed"
