"""``reports/metrics.json`` and the recall@K table: what DVC, MLflow and people read.

Layout of ``metrics.json``::

    {
      "click_recall@10": ..., "click_mrr": ...,   # the model's metrics again, flat, for
      "identical_recall@10": ...,                 # `dvc metrics diff` (truth family: demo only)
      ...
      "model": {metric: value},        # everything measured for the trained model
      "baselines": {name: {metric: value} | {"skipped": why}},
      "ratios": {"model_vs_<baseline>_click_recall@10": ..., "..._identical_recall@10": ...},
      "targets": {metric: {"target": t, "value": v, "met": true | false | null}},
      "families": ["click", "truth"],  # the metric families measured ("truth": demo worlds)
      "eval_set": {"id": ..., "drop": ..., "split": "time 0.2", "queries": n,
                   "click_queries": m, "truth": bool},
      "inputs": {"drop": ..., "truth": ..., "mining": ...},  # what the champion is re-scored on
      "data": {"id": ..., "drops": [{"drop", "dvc_hash"}]},  # the window evaluated (DVC hashes)
      "baseline_figures": {"measured_at": ..., "data": {...}, "eval_set": ..., "same_data": bool,
                           "note": ..., "notes": [...]},  # where "baselines" come from
      "queries": n, "drop": id, "model_fingerprint": sha256,
      "warnings": [...]
    }

The baselines are not measured with the model: the ``baselines`` stage (``vsearch baselines``,
weekly) measures them, and :mod:`vsearch.evaluation.figures` attaches its latest figures,
dated and with their data hash; ratios only when they were measured on the same eval set.

``null`` marks a metric that does not apply (no classifier) or could not be computed (no
oracle given, an exact recall of 0); targets on such values are ``met: null``, never faked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vsearch.evaluation.metrics import ratio
from vsearch.fsio import atomic_write_text
from vsearch.settings import EvaluationSettings

MODEL = "model"  # the trained model's system name: its key in the report
ORACLE = "oracle"
ORACLE_RATIO = "oracle_ratio"
METRICS_FILE = "metrics.json"
PLOTS_DIR = "plots"
CURVE_FILE = "recall_at_k.csv"
PER_QUERY_FILE = "per_query.csv"  # the model's outcome per held-out query (debugging, audits)
FIGURES_KEY = "baseline_figures"  # where the baselines shown were measured (evaluation.figures)


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to ``None`` (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_report(
    results: Mapping[str, Any],
    skipped: Mapping[str, str],
    ev: Any,
    settings: EvaluationSettings,
) -> dict[str, Any]:
    """The report dict from per-system results (:class:`~vsearch.evaluation.measure.SystemResult`).

    Args:
        results: system name → result; must hold ``"model"``.
        skipped: baselines not evaluated → why.
        ev: the :class:`~vsearch.evaluation.evalset.EvalSet` evaluated.
        settings: the ``evaluation`` section (K values and targets).
    """
    if MODEL not in results:
        raise ValueError("results must include the model")
    hk = settings.headline_k
    key = f"identical_recall@{hk}"
    model = dict(results[MODEL].metrics)
    keys = [k for k in (f"click_recall@{hk}", key) if k in model]
    baselines: dict[str, Any] = {n: dict(r.metrics) for n, r in results.items() if n != MODEL}
    baselines.update({n: {"skipped": why} for n, why in skipped.items() if n not in baselines})
    ratios = {
        f"model_vs_{n}_{k}": ratio(model.get(k), m.get(k))
        for n, m in baselines.items()
        if "skipped" not in m
        for k in keys
    }
    targets = build_targets(model, ratios, settings)
    warnings = [f"baseline {n}: {why}" for n, why in skipped.items()]
    if not ev.has_truth:
        warnings.append(
            "no ground truth for this drop: click metrics only (truth metrics and targets n/a)"
        )
    if ev.without_truth:
        warnings.append(f"{ev.without_truth} held-out queries have no truth row (left out)")
    unfindable = int((~ev.findable).sum()) if ev.has_truth else 0
    if unfindable:
        warnings.append(f"{unfindable} queries show a product with no listing (left out of recall)")
    unclicked = len(ev) - int(ev.clicked.sum())
    if unclicked:
        warnings.append(
            f"{unclicked} held-out queries have no click on a catalog listing "
            "(left out of the click metrics)"
        )
    report = {
        **{k: v for k, v in model.items()},
        MODEL: model,
        "baselines": baselines,
        "ratios": ratios,
        "targets": targets,
        "targets_met": sum(1 for t in targets.values() if t["met"]),
        "targets_total": len(targets),
        "families": ["click", "truth"] if ev.has_truth else ["click"],
        "eval_set": ev.describe(),
        "queries": len(ev),
        "drop": ev.drop_id,
        "model_fingerprint": results[MODEL].fingerprint,
        "seconds": {n: round(r.seconds, 2) for n, r in results.items()},
        "warnings": warnings,
    }
    return _clean(report)


def build_targets(
    model: Mapping[str, Any], ratios: Mapping[str, Any], settings: EvaluationSettings
) -> dict[str, dict[str, Any]]:
    """Each target with the model's value (``oracle_ratio``: from ``ratios``) and whether it is
    met (``None`` when the value is missing: no oracle figures on this eval set)."""
    oracle_ratio = ratios.get(f"model_vs_{ORACLE}_identical_recall@{settings.headline_k}")
    targets: dict[str, dict[str, Any]] = {}
    for metric, target in settings.targets.items():
        value = oracle_ratio if metric == ORACLE_RATIO else model.get(metric)
        met = None if value is None or not math.isfinite(value) else bool(value >= target)
        targets[metric] = {"target": target, "value": value, "met": met}
    return targets


def curve_frame(results: Mapping[str, Any]) -> pd.DataFrame:
    """Long table ``k, system, recall`` of every system's recall@K curve (DVC plots)."""
    rows = [
        {"k": k + 1, "system": name, "recall": float(v)}
        for name, r in results.items()
        for k, v in enumerate(r.curve)
    ]
    return pd.DataFrame(rows, columns=["k", "system", "recall"])


def write_report(
    report: dict[str, Any], curves: pd.DataFrame, per_query: pd.DataFrame, out: Path
) -> dict[str, Path]:
    """Write ``metrics.json``, ``plots/recall_at_k.csv`` and ``per_query.csv`` into ``out``.

    Each file is written beside its target and renamed, so readers never see half a file.
    """
    paths = {
        "metrics": out / METRICS_FILE,
        "curve": out / PLOTS_DIR / CURVE_FILE,
        "per_query": out / PER_QUERY_FILE,
    }
    atomic_write_text(paths["metrics"], json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["curve"], curves.to_csv(index=False, float_format="%.10g"))
    atomic_write_text(paths["per_query"], per_query.to_csv(index=False, float_format="%.6g"))
    return paths


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def report_markdown(report: Mapping[str, Any]) -> str:
    """A people-sized summary: metrics per system side by side, then the targets."""
    systems = {MODEL: report[MODEL]}
    systems.update({n: m for n, m in report["baselines"].items() if "skipped" not in m})
    names = [k for k in report[MODEL] if not k.startswith(("queries", "click_queries"))]
    eval_set = report.get("eval_set") or {}
    lines = [
        f"evaluation of {report['drop']} on {report['queries']} held-out queries "
        f"(model {str(report['model_fingerprint'])[:12]}; eval set {eval_set.get('id', '?')}, "
        f"{eval_set.get('click_queries', '?')} with a click; metric families: "
        f"{', '.join(report.get('families', []))})",
        "",
        "| metric | " + " | ".join(systems) + " |",
        "| --- |" + " --- |" * len(systems),
    ]
    for name in names:
        lines.append(
            f"| {name} | " + " | ".join(_cell(m.get(name)) for m in systems.values()) + " |"
        )
    lines += ["", "| target | value | goal | met |", "| --- | --- | --- | --- |"]
    for metric, t in report["targets"].items():
        met = {True: "yes", False: "NO", None: "n/a"}[t["met"]]
        lines.append(f"| {metric} | {_cell(t['value'])} | >= {t['target']} | {met} |")
    lines += [f"- {w}" for w in report["warnings"]]
    figures = report.get(FIGURES_KEY)
    if figures:
        lines += ["", f"baseline figures: {figures.get('note', '')}"]
        lines += [f"- {n}" for n in figures.get("notes", [])]
    return "\n".join(lines)
