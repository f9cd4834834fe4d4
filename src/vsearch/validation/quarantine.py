"""Split a drop into ``clean`` rows and ``quarantined`` rows (with a reason), keeping it consistent.

Why cascade: mining and training read ``clean`` without re-checking it. If a catalog row or a
query leaves, impressions pointing at it would dangle; if a *clicked* impression leaves, the rest
of its result list has a hole in its ``click_order`` sequence and would teach wrong negatives.
So those rows leave too, with a ``cascade:...`` reason naming the original cause.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import pandas as pd

from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES

REASON = "reason"
SEP = "; "

RowReasons = dict[str, dict[int, list[str]]]


def _cascade(
    reasons: dict[int, list[str]],
    frame: pd.DataFrame,
    column: str,
    causes: dict[str, str],
    tag: str,
) -> None:
    """Add ``cascade:<tag>(cause)`` to rows of ``frame`` whose ``column`` is in ``causes``."""
    if not causes:
        return
    hit = frame[column].map(causes)
    for row, cause in hit[hit.notna()].items():
        reasons[int(row)].append(f"cascade:{tag}({cause})")


def _causes(frame: pd.DataFrame, reasons: dict[int, list[str]], column: str) -> dict[str, str]:
    """``{key: 'reason+reason'}`` for quarantined rows of ``frame`` (by ``column``)."""
    out: dict[str, str] = {}
    for row, why in reasons.items():
        key = frame.at[row, column]
        if isinstance(key, str):
            direct = sorted({w.split("(")[0] for w in why})
            out[key] = "+".join(direct)
    return out


def _split(frame: pd.DataFrame, reasons: dict[int, list[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = sorted(reasons)
    bad = frame.loc[rows].copy()
    bad[REASON] = [SEP.join(dict.fromkeys(reasons[r])) for r in rows]
    return frame.drop(index=rows).reset_index(drop=True), bad.reset_index(drop=True)


def apply_quarantine(
    typed: dict[str, pd.DataFrame], row_reasons: RowReasons
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Move rows named in ``row_reasons`` (and their cascades) out of the typed tables.

    Args:
        typed: contract-cast tables with a 0..n-1 index.
        row_reasons: ``{table: {row: [check, ...]}}`` from the quarantine-severity checks.

    Returns:
        ``(clean, quarantined)``; quarantined frames have the contract columns plus ``reason``
        (checks joined by ``"; "``). Every table appears in both, possibly empty.
    """
    reasons: dict[str, dict[int, list[str]]] = {
        name: defaultdict(list, {r: list(w) for r, w in row_reasons.get(name, {}).items()})
        for name in typed
    }
    imp = typed[IMPRESSIONS.name]
    imp_reasons = reasons[IMPRESSIONS.name]
    item_causes = _causes(typed[CATALOG.name], reasons[CATALOG.name], "item_id")
    query_causes = _causes(typed[QUERIES.name], reasons[QUERIES.name], "query_id")
    _cascade(imp_reasons, imp, "item_id", item_causes, "item")
    _cascade(imp_reasons, imp, "query_id", query_causes, "query")
    # a quarantined click breaks its list's click_order sequence: the whole list goes
    clicked = imp["clicked"].eq(True)
    clicked_rows = [r for r in imp_reasons if clicked.loc[r]]
    click_causes = _causes(imp, {r: imp_reasons[r] for r in clicked_rows}, "query_id")
    hit = imp["query_id"].map(click_causes)
    for row, cause in hit[hit.notna()].items():
        if int(row) not in imp_reasons:
            imp_reasons[int(row)].append(f"cascade:click({cause})")
    clean, quarantined = {}, {}
    for name, frame in typed.items():
        clean[name], quarantined[name] = _split(frame, dict(reasons[name]))
    return clean, quarantined


def rows_of(indices: Iterable[object]) -> list[int]:
    """Row numbers from a GX ``unexpected_index_list`` (ints, or dicts for multi-column checks)."""
    rows = []
    for idx in indices:
        if isinstance(idx, dict):
            idx = idx.get("index", idx.get("__index__"))
        try:
            rows.append(int(idx))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return rows
