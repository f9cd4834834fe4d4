"""Report, Data Docs, history and the CLI command: what people and the next drop read."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from vsearch.cli_support import configure
from vsearch.settings import ValidationSettings
from vsearch.validation import load_history, summarize, validate_drop, write_report
from vsearch.validation.cli import validate_command

pytestmark = pytest.mark.unit


def _duplicate_event(drop: Path) -> None:
    import pandas as pd

    path = drop / "impressions.parquet"
    df = pd.read_parquet(path)
    df.loc[1, "event_id"] = df.loc[0, "event_id"]
    df.to_parquet(path, index=False)


def test_json_report_data_docs_and_history(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime, tmp_path: Path
) -> None:
    _duplicate_event(fresh_drop)
    result = validate_drop(fresh_drop, vsettings, docs_dir=tmp_path / "docs", now=now)
    report = write_report(result, tmp_path / "reports" / "unit-drop.json")

    data = json.loads(report.read_text())
    assert data["success"] is False
    assert data["critical_failures"] == [
        "impressions.event_id key_unique (expect_column_values_to_be_unique)"
    ]
    (failure,) = data["failures"]
    assert failure["examples"][0]["event_id"] == "e000-0"
    assert data["stats"]["rows"]["impressions"] == 200

    assert result.docs_path == (tmp_path / "docs" / "index.html").resolve()
    assert result.docs_path.is_file()
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 6  # schema + content suite for each of the three tables
    assert any("key_unique" in p.read_text() for p in pages)  # the check's notes/meta rendered

    assert load_history(tmp_path / "reports") == []  # a failed drop is no baseline...
    (stats,) = load_history(tmp_path / "reports", only_successful=False)
    assert stats == result.stats
    assert load_history(tmp_path / "reports", exclude="unit-drop", only_successful=False) == []

    text = summarize(result)
    assert "FAILED" in text and "key_unique" in text and "event_id" in text


def test_history_skips_foreign_files_and_feeds_the_volume_gate(
    valid_drop: Path, vsettings: ValidationSettings, now: datetime, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "notes.json").write_text('{"hello": 1}')
    (reports / "broken.json").write_text("{")
    ok = validate_drop(valid_drop, vsettings, now=now)
    ok.stats.drop_id = "older"
    write_report(ok, reports / "older.json")
    history = load_history(reports)
    assert [s.drop_id for s in history] == ["older"]
    quieter = ValidationSettings(**{**vsettings.model_dump(), "volume_ratio_min": 1.5})
    again = validate_drop(valid_drop, quieter, history=history, now=now + timedelta(hours=1))
    assert [f.check for f in again.failures] == ["volume_vs_history"]


def _cli(tmp_path: Path, params_path: Path) -> typer.Typer:
    raw = yaml.safe_load(params_path.read_text())
    raw["ingest"]["validation_reports_dir"] = str(tmp_path / "reports")
    raw["ingest"]["ledger_file"] = str(tmp_path / "drops.json")  # this project's drops only
    raw["ingest"]["window_dir"] = str(tmp_path / "window")
    raw["validation"].update(image_max_bytes=20_000, image_max_pixels=10_000, image_min_side=16)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        configure(params)

    app.command("validate")(validate_command)
    return app


def test_cli_exit_codes_report_and_docs(
    valid_drop: Path, fresh_drop: Path, tmp_path: Path, params_path: Path
) -> None:
    app = _cli(tmp_path, params_path)
    runner = CliRunner()
    res = runner.invoke(app, ["validate", str(valid_drop), "--no-docs"])
    assert res.exit_code == 0, res.output
    assert "PASSED" in res.output
    assert (tmp_path / "reports" / "unit-drop.json").is_file()
    assert not (tmp_path / "reports" / "unit-drop_docs").exists()

    _duplicate_event(fresh_drop)
    report = tmp_path / "elsewhere.json"
    res = runner.invoke(app, ["validate", str(fresh_drop), "--report", str(report), "--json"])
    assert res.exit_code == 2, res.output
    assert json.loads(report.read_text())["success"] is False
    assert "key_unique (expect_column_values_to_be_unique)" in res.output
    assert (tmp_path / "reports" / "unit-drop_docs" / "index.html").is_file()

    res = runner.invoke(app, ["validate", str(tmp_path / "no-such-drop")])
    assert res.exit_code == 2
    assert "drop folder not found" in res.output
