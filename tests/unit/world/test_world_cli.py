"""``vsearch world`` and ``vsearch world preview`` through the real CLI, and the preview sheet."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vsearch.cli_support import configure
from vsearch.errors import EXIT_BAD_INPUT
from vsearch.world import render_preview
from vsearch.world.cli import app

pytestmark = pytest.mark.unit
PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VSEARCH__WORLD__IMAGE_SIZE", "64")  # tiny images: fast
    configure(PARAMS)
    return CliRunner()


def test_cli_generates_refuses_non_empty_out_and_previews(
    runner: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "drop"
    args = ["--out", str(out), "--items", "30", "--queries", "8", "--seed", "5", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "drop.json").is_file() and (
        tmp_path / "drop.truth" / "products.parquet"
    ).is_file()
    assert '"items": 30' in res.stdout

    again = runner.invoke(app, args)
    assert again.exit_code == EXIT_BAD_INPUT
    assert "not empty" in again.output and "--force" in again.output

    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output

    sheet = tmp_path / "sheet.png"
    res = runner.invoke(app, ["preview", str(out), "--out", str(sheet)])  # truth found beside it
    assert res.exit_code == 0, res.output
    with Image.open(sheet) as im:
        assert im.format == "PNG" and im.width > 500 and im.height > 150


def test_cli_needs_out_and_a_real_drop(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, [])
    assert res.exit_code == EXIT_BAD_INPUT and "--out" in res.output
    res = runner.invoke(app, ["preview", str(tmp_path / "nope"), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == EXIT_BAD_INPUT and "not a folder" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["preview", str(empty), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == EXIT_BAD_INPUT and "catalog" in res.output


def test_preview_with_and_without_truth(small_world: tuple[Path, Path], tmp_path: Path) -> None:
    drop, truth = small_world
    with_truth = render_preview(drop, truth, tmp_path / "a.png")
    without = render_preview(drop, None, tmp_path / "b.png")
    for p in (with_truth, without):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 500
    # with truth there are labelled product rows (taller than the two plain grids)
    with Image.open(with_truth) as a, Image.open(without) as b:
        assert a.height > b.height
