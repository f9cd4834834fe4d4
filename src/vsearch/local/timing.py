"""Where a run's time went: one row per stage (ran or skipped, seconds), as a table.

Why: the demo has a time budget (docs/learning.md#time-budget) and a night's run is only
comparable to the last one stage by stage. The flows time their stages with :func:`timed` and
return the rows; the demo prints :func:`timing_text`, the nightly's Prefect artifact shows
:func:`timing_markdown`. Rows are plain dicts (``{"stage", "ran", "seconds"}``) so they travel
through Prefect results and JSON unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

RAN = "ran"
SKIPPED = "skipped"


def row(stage: str, ran: bool, seconds: float) -> dict[str, Any]:
    """One stage's timing row."""
    return {"stage": stage, "ran": bool(ran), "seconds": round(float(seconds), 1)}


@contextmanager
def timed(rows: list[dict[str, Any]], stage: str, ran: bool = True) -> Iterator[dict[str, Any]]:
    """Append ``stage``'s row to ``rows`` when the block ends (also when it raises).

    The yielded row may be edited inside the block (``ran`` is often known only there).
    """
    entry = row(stage, ran, 0.0)
    started = time.perf_counter()
    try:
        yield entry
    finally:
        entry["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(entry)


def total_seconds(rows: Iterable[Mapping[str, Any]]) -> float:
    """Sum of the rows' seconds."""
    return round(sum(float(r["seconds"]) for r in rows), 1)


def timing_markdown(rows: Iterable[Mapping[str, Any]]) -> str:
    """``| stage | ran/skipped | seconds |`` with a total line (the Prefect artifact)."""
    rows = list(rows)
    lines = ["| stage | ran/skipped | seconds |", "| --- | --- | ---: |"]
    for r in rows:
        lines.append(f"| {r['stage']} | {RAN if r['ran'] else SKIPPED} | {r['seconds']:.1f} |")
    lines.append(f"| **total** | | **{total_seconds(rows):.1f}** |")
    return "\n".join(lines)


def timing_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The same table in aligned plain text (a terminal)."""
    rows = list(rows)
    width = max([len("total"), len("stage"), *(len(str(r["stage"])) for r in rows)])
    lines = [f"  {'stage':<{width}}  {'ran/skipped':<11}  {'seconds':>8}"]
    for r in rows:
        state = RAN if r["ran"] else SKIPPED
        lines.append(f"  {r['stage']:<{width}}  {state:<11}  {r['seconds']:>8.1f}")
    lines.append(f"  {'total':<{width}}  {'':<11}  {total_seconds(rows):>8.1f}")
    return "\n".join(lines)
