"""Pictures of an evaluation: recall@K curves of every system, example searches, loss curves.

Why example grids next to the numbers: a recall figure does not show *how* a search fails
(a look-alike above the true product, a box on the background, a wrong category); a few held-out
queries with the detected box drawn and the top results framed green when identical do.
The trained model's loss curves (:func:`plot_history`, from its run's ``history.json``) are
drawn here too: the evaluation stage puts them beside the numbers they explain.
Rendered with matplotlib's Agg backend (files only, no display).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DPI = 100
CURVE_SIZE = (7.0, 4.5)  # inches
IDENTICAL = "#1a9641"  # green frame: the result shows the query's product
OTHER = "#bbbbbb"
DETECTED = "#e31a1c"  # detected box
TRUE_BOX = "#1a9641"  # true box (dashed)
FRAME_WIDTH = 4.0
THIN_FRAME = 1.0
MISSING_FILL = 200  # grey of a picture that cannot be read
TITLE_SIZE = 7
LOSS_CURVES_FILE = "loss_curves.png"
HISTORY_AXES = ("epoch",)  # per-epoch row keys that are coordinates, not series
HISTORY_COLUMNS = 4  # small multiples per row
HISTORY_PANEL = (3.2, 2.4)  # inches per small multiple


@dataclass(frozen=True)
class Example:
    """One held-out query and what the search returned for it.

    Attributes:
        query_id: the query.
        image: its photo, relative to the drop folder.
        box: the box the pipeline used (normalised ``xyxy``).
        true_box: the true box (normalised ``xyxy``).
        category: the fused category the pipeline chose.
        true_category: the product's category.
        results: top results as ``(image, item_id, identical, grouped listings)``.
    """

    query_id: str
    image: str
    box: tuple[float, ...]
    true_box: tuple[float, ...]
    category: str
    true_category: str
    results: tuple[tuple[str, str, bool, int], ...]


def build_examples(result: Any, ev: Any, n: int, per_query: int, seed: int) -> list[Example]:
    """``n`` held-out queries drawn with ``seed`` from a system's result (in query-id order)."""
    if n <= 0 or not len(ev):
        return []
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(ev), size=min(n, len(ev)), replace=False))
    out = []
    for i in rows:
        resp = result.responses[i]
        sku = ev.query_sku[i]
        hits = tuple(
            (
                h.image,
                h.item_id,
                any(ev.product_of.get(x) == sku for x in (h.item_id, *h.more_sellers)),
                len(h.more_sellers),
            )
            for h in resp.results[:per_query]
        )
        out.append(
            Example(
                query_id=str(ev.query_ids[i]),
                image=ev.query_images[i],
                box=tuple(float(v) for v in resp.box),
                true_box=tuple(float(v) for v in ev.true_boxes[i]),
                category=str(resp.category),
                true_category=str(ev.query_category[i]),
                results=hits,
            )
        )
    return out


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _saved_figure(path: Path, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """``plt.subplots(**subplots)``; the figure is saved to ``path`` on success, always closed."""
    plt = _pyplot()
    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)


def plot_recall_curves(curves: pd.DataFrame, path: Path, marks: Sequence[int] = ()) -> Path:
    """Identical recall@K against K, one line per system (``curves``: k, system, recall)."""
    with _saved_figure(path, figsize=CURVE_SIZE, dpi=DPI) as (_fig, ax):
        for system, part in curves.groupby("system", sort=False):
            ax.plot(
                part["k"],
                part["recall"],
                label=str(system),
                linewidth=2 if system == "model" else 1.2,
            )
        for k in marks:
            ax.axvline(k, color=OTHER, linewidth=0.8, linestyle=":")
        ax.set_xlabel("K (results looked at)")
        ax.set_ylabel("identical-product recall@K")
        ax.set_ylim(0, 1)
        ax.set_xlim(1, max(int(curves["k"].max()), 2) if len(curves) else 2)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
        ax.set_title("held-out queries: identical product within the top K")
    return path


def _thumb(drop: Path, rel: str, side: int) -> np.ndarray:
    from PIL import Image

    from vsearch.search.images import upright

    try:
        with Image.open(drop / rel) as img:
            return np.asarray(upright(img).convert("RGB").resize((side, side), Image.BILINEAR))
    except OSError:
        return np.full((side, side, 3), MISSING_FILL, dtype=np.uint8)


def _rect(ax: Any, box: Sequence[float], side: int, color: str, style: str) -> None:
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = (float(v) * side for v in box)
    ax.add_patch(
        Rectangle(
            (x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=2, linestyle=style
        )
    )


def _frame(ax: Any, color: str, width: float) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def plot_examples(examples: Sequence[Example], drop: Path, path: Path, thumb: int) -> Path | None:
    """A grid: each row a query (detected box red, true box dashed green) and its top results.

    Returns the path, or ``None`` when there is nothing to draw.
    """
    if not examples:
        return None
    cols = 1 + max(len(e.results) for e in examples)
    inches = thumb / DPI
    with _saved_figure(
        path,
        nrows=len(examples),
        ncols=cols,
        figsize=(cols * inches * 1.1, len(examples) * inches * 1.3),
        dpi=DPI,
        squeeze=False,
    ) as (_fig, axes):
        for row, ex in zip(axes, examples, strict=True):
            ax = row[0]
            ax.imshow(_thumb(drop, ex.image, thumb))
            _rect(ax, ex.true_box, thumb, TRUE_BOX, "--")
            _rect(ax, ex.box, thumb, DETECTED, "-")
            _frame(ax, "black", THIN_FRAME)
            ax.set_title(
                f"{ex.query_id}\n{ex.category} (true {ex.true_category})", fontsize=TITLE_SIZE
            )
            for j, ax in enumerate(row[1:]):
                if j >= len(ex.results):
                    ax.axis("off")
                    continue
                image, item_id, identical, more = ex.results[j]
                ax.imshow(_thumb(drop, image, thumb))
                _frame(
                    ax, IDENTICAL if identical else OTHER, FRAME_WIDTH if identical else THIN_FRAME
                )
                extra = f" (+{more} sellers)" if more else ""
                ax.set_title(f"{j + 1}. {item_id}{extra}", fontsize=TITLE_SIZE)
    return path


def plot_history(history: Sequence[Mapping[str, Any]], out: Path) -> Path | None:
    """Small multiples of every per-epoch series (losses first, ``total`` leading); PNG.

    Args:
        history: the ``epochs`` rows of a training run's ``history.json``.
        out: the PNG to write.

    Returns ``None`` when there is nothing to draw (no epoch finished, no numeric series).
    """
    if not history:
        return None
    keys = sorted(
        {k for row in history for k, v in row.items() if isinstance(v, int | float)}
        - set(HISTORY_AXES),
        key=lambda k: (k != "total", k),
    )
    if not keys:
        return None
    cols = min(HISTORY_COLUMNS, len(keys))
    rows = -(-len(keys) // cols)
    width, height = HISTORY_PANEL
    with _saved_figure(
        out, nrows=rows, ncols=cols, figsize=(width * cols, height * rows), squeeze=False
    ) as (_fig, axes):
        for ax, key in zip(axes.flat, keys, strict=False):
            pts = [(row.get("epoch", i), row[key]) for i, row in enumerate(history) if key in row]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(keys) :]:
            ax.axis("off")
    return out
