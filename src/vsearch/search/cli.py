"""``vsearch search IMAGE``: query the current index release with a photo, from the shell.

The same :class:`~vsearch.search.pipeline.SearchPipeline` the service runs. Where the model and the
catalog come from when not given: the model folder beside the embeddings the release was built from
(``vsearch train --out RUN`` writes ``RUN/model`` and ``RUN/embeddings``), and the merged view of
the window of drops selected by the last ingest (``ingest.window_dir``). The filters are the
service's (:mod:`vsearch.search.filters`): ``--price-min``, ``--price-max``, ``--seller`` (repeat
for several), ``--in-stock``; ``--category`` repeated searches those categories instead of routing.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded
from vsearch.errors import BadInput


def _parse_box(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise BadInput(f"--box must be x0,y0,x1,y1 (normalised numbers), got {text!r}") from None


def _default_model(indexes: Path) -> Path:
    from vsearch.index.release import open_manifest, resolve

    manifest = open_manifest(resolve(indexes), None, False)
    if manifest.source:
        candidate = Path(manifest.source).parent / "model"
        if candidate.is_dir():
            return candidate
    raise BadInput(
        f"release {manifest.version} does not say which model built it (no model folder beside "
        f"its source {manifest.source!r}); pass --model MODEL_DIR"
    )


def _default_drop() -> Path:
    """The merged view of the selected window (raises BadInput naming --drop when none is)."""
    from vsearch.data.ingest import current_view

    return current_view(get_settings(), Path.cwd())


def search_command(
    image: Path = typer.Argument(..., help="photo to search with"),
    k: int | None = typer.Option(None, "--k", help="results (default: search.default_k)"),
    box: str | None = typer.Option(
        None, "--box", help="x0,y0,x1,y1 normalised: search this box, not a detected one"
    ),
    candidate: int | None = typer.Option(
        None,
        "--candidate",
        help="search this candidate box (index into the output's candidates; default 0, "
        "the most confident)",
    ),
    category: list[str] | None = typer.Option(
        None, "--category", help="search only this category (repeat: several, no routing)"
    ),
    price_min: float | None = typer.Option(None, "--price-min", help="only listings >= price"),
    price_max: float | None = typer.Option(None, "--price-max", help="only listings <= price"),
    seller: list[str] | None = typer.Option(
        None, "--seller", help="only listings of this seller (repeat for several)"
    ),
    in_stock: bool = typer.Option(
        False, "--in-stock", help="drop listings whose stock is 0 (unknown stock passes)"
    ),
    model: Path | None = typer.Option(
        None, "--model", help="model folder (default: the one the release was built from)"
    ),
    drop: Path | None = typer.Option(
        None, "--drop", help="drop whose catalog the release indexes (default: current drop)"
    ),
    indexes: Path | None = typer.Option(
        None, "--indexes", help="releases folder (default: project.indexes_dir)"
    ),
    plain: bool = typer.Option(False, "--plain", help="similarity order, no ranking/grouping"),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Search the current index release with a photo (fused category, box, grouped results).

    The output lists the objects found in the photo (``candidates``: box and objectness, most
    confident first) and which one was searched (``candidate``); ``--candidate N`` searches
    another one, ``--box`` a region of your own.
    """

    def body() -> None:
        from vsearch.search.filters import SearchFilter
        from vsearch.search.pipeline import SearchPipeline

        settings = get_settings()
        filters = SearchFilter.parse(price_min, price_max, seller or None, in_stock)
        cats = list(dict.fromkeys(category or []))
        if not image.is_file():
            raise BadInput(f"{image}: no such file")
        data = image.read_bytes()
        where = indexes or settings.project.indexes_dir
        pipeline = SearchPipeline.open(
            settings,
            model or _default_model(where),
            where,
            drop or _default_drop(),
            writable=False,
            mining_dir=settings.search.product_groups_dir,
        )
        with pipeline:
            res = pipeline.search_bytes(
                data,
                settings.search.default_k if k is None else k,
                box=_parse_box(box),
                category=(cats[0] if len(cats) == 1 else cats) or None,
                rank=not plain,
                filters=filters,
                candidate=candidate,
            )
        emit(res.to_dict(), json_out)

    run_guarded(body)
