"""The latest baseline figures: what the ``baselines`` stage writes, and how a report shows them.

Why apart from the model's evaluation: the baselines (colour histogram, untrained, category-only,
oracle) answer "what does the model add?", a question that changes slowly; measuring them takes
two extra trainings, so they run off the nightly path (``vsearch baselines``, a weekly
deployment) and the model's report shows their *latest* figures, dated and with the data they
were measured on (the window's id and each drop's DVC hash). Ratios model / baseline are given
only when both stand on the same eval set; otherwise the report says the figures were measured
on other data. Nothing on the promotion path reads them.

Layout of the figures file (``reports/baselines/metrics.json``)::

    {
      "measured_at": "2026-12-04T20:00:00+00:00",
      "data": {"id": "window-...", "drops": [{"drop": ..., "dvc_hash": ...}]},
      "eval_set": {"id": ..., ...},
      "baselines": {name: {metric: value} | {"skipped": why}},
      "seconds": {name: s}, "warnings": [...]
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vsearch.contracts import DROP_MANIFEST
from vsearch.errors import BadInput
from vsearch.evaluation.metrics import ratio
from vsearch.evaluation.report import FIGURES_KEY, MODEL, _clean, build_targets
from vsearch.settings import EvaluationSettings

FIGURES_FILE = "metrics.json"  # in the baselines stage's output folder
NO_FIGURES_NOTE = "none measured yet: `vsearch baselines` measures them (off the nightly path)"


def data_lineage(drop: Path) -> dict[str, Any]:
    """The data a drop folder holds: its id and, for the window, each drop with its DVC hash."""
    path = Path(drop) / DROP_MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    window = manifest.get("window")  # the merged window's drops (a world's drop: its time span)
    drops = [
        {"drop": str(d.get("drop")), "dvc_hash": d.get("dvc_hash")}
        for d in (window if isinstance(window, list) else [])
        if isinstance(d, dict)
    ]
    return {"id": str(manifest.get("drop_id") or Path(drop).name), "drops": drops}


def build_figures(
    results: Mapping[str, Any],
    skipped: Mapping[str, str],
    ev: Any,
    data: Mapping[str, Any],
    measured_at: datetime | None = None,
) -> dict[str, Any]:
    """The figures file's content from the baselines' results (no model among them).

    Args:
        results: baseline name → :class:`~vsearch.evaluation.measure.SystemResult`.
        skipped: baselines not measured → why (an oracle without truth).
        ev: the :class:`~vsearch.evaluation.evalset.EvalSet` they were measured on.
        data: :func:`data_lineage` of the drop folder.
        measured_at: when (default: now, UTC).
    """
    if MODEL in results:
        raise ValueError("the baseline figures hold baselines only, not the model")
    baselines: dict[str, Any] = {n: dict(r.metrics) for n, r in results.items()}
    baselines.update({n: {"skipped": why} for n, why in skipped.items() if n not in baselines})
    when = measured_at or datetime.now(UTC)
    return _clean(
        {
            "measured_at": when.isoformat(timespec="seconds"),
            "data": dict(data),
            "eval_set": ev.describe(),
            "baselines": baselines,
            "seconds": {n: round(r.seconds, 2) for n, r in results.items()},
            "warnings": [f"baseline {n}: {why}" for n, why in skipped.items()],
        }
    )


def read_figures(path: Path | None) -> dict[str, Any] | None:
    """The figures file at ``path``; ``None`` when there is none yet.

    Raises:
        BadInput: the file exists but is not a figures file.
    """
    if path is None or not Path(path).is_file():
        return None
    try:
        figures = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(
            f"{path}: unreadable baseline figures ({exc}); re-run `vsearch baselines`"
        ) from None
    if not isinstance(figures, dict) or not isinstance(figures.get("baselines"), dict):
        raise BadInput(f"{path}: not baseline figures (no 'baselines'); re-run `vsearch baselines`")
    return figures


def _data_text(data: Mapping[str, Any] | None) -> str:
    data = data or {}
    drops = ", ".join(f"{d['drop']} (DVC {d.get('dvc_hash')})" for d in data.get("drops") or [])
    return f"{data.get('id', '?')}" + (f" = {drops}" if drops else "")


def attach_figures(
    report: Mapping[str, Any],
    figures: Mapping[str, Any] | None,
    settings: EvaluationSettings,
    source: Path | str | None = None,
) -> dict[str, Any]:
    """``report`` with its baselines, ratios and targets from ``figures`` (replacing any before).

    Ratios (and the ``oracle_ratio`` target) only when the figures were measured on the
    report's eval set; otherwise ``baseline_figures.same_data`` is false and its note says on
    which data and when they were measured.
    """
    out = dict(report)
    model = out[MODEL]
    if figures is None:
        out["baselines"], out["ratios"] = {}, {}
        out[FIGURES_KEY] = {
            "source": str(source) if source is not None else None,
            "measured_at": None,
            "same_data": None,
            "note": NO_FIGURES_NOTE,
            "notes": [],
        }
    else:
        baselines = dict(figures["baselines"])
        fig_set = (figures.get("eval_set") or {}).get("id")
        same = fig_set is not None and fig_set == (out.get("eval_set") or {}).get("id")
        hk = settings.headline_k
        keys = [k for k in (f"click_recall@{hk}", f"identical_recall@{hk}") if k in model]
        out["baselines"] = baselines
        out["ratios"] = (
            {
                f"model_vs_{n}_{k}": ratio(model.get(k), m.get(k))
                for n, m in baselines.items()
                if "skipped" not in m
                for k in keys
            }
            if same
            else {}
        )
        when = figures.get("measured_at")
        data = _data_text(figures.get("data"))
        if same:
            note = f"measured {when} on the model's data, {data}"
        else:
            note = (
                f"measured {when} on OTHER data than the model: {data} (eval set {fig_set}); "
                f"the model was evaluated on {_data_text(out.get('data'))} (eval set "
                f"{(out.get('eval_set') or {}).get('id')}): no ratios; `vsearch baselines` "
                "measures them on the current window"
            )
        out[FIGURES_KEY] = {
            "source": str(source) if source is not None else None,
            "measured_at": when,
            "data": figures.get("data"),
            "eval_set": fig_set,
            "same_data": same,
            "note": note,
            "notes": list(figures.get("warnings") or []),
        }
    out["targets"] = build_targets(model, out["ratios"], settings)
    out["targets_met"] = sum(1 for t in out["targets"].values() if t["met"])
    out["targets_total"] = len(out["targets"])
    return _clean(out)


FIGURE_COLUMNS = (
    "identical_recall@10",
    "click_recall@10",
    "click_mrr",
    "category_acc_fused",
    "box_iou_mean",
)  # shown per baseline (those measured: no truth, no identical_recall)


def figures_markdown(figures: Mapping[str, Any]) -> str:
    """The figures file as markdown: when, on which data, a row per baseline (or why not)."""
    baselines = figures["baselines"]
    shown = [c for c in FIGURE_COLUMNS if any(c in m for m in baselines.values())]
    lines = [
        f"baseline figures measured {figures.get('measured_at')} on "
        f"{_data_text(figures.get('data'))} (eval set {(figures.get('eval_set') or {}).get('id')})",
        "",
        "| baseline | " + " | ".join(shown) + " |",
        "| --- |" + " --- |" * len(shown),
    ]
    for name, m in baselines.items():
        if "skipped" in m:
            lines.append(f"| {name} | {m['skipped']} |" + " |" * (len(shown) - 1))
        else:
            cells = ["n/a" if m.get(c) is None else f"{m[c]:.3f}" for c in shown]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
