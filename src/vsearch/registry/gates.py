"""The promotion gate: may a challenger model replace the champion?

Two checks per metric (docs/operations.md#the-promotion-gate): an **absolute floor** (the challenger
must be good enough on its own) and **no regression** beyond a tolerance against the current
champion (a model may not quietly get worse release by release). Latency is lower-is-better, so its
floor is a ceiling and its regression check points the other way; its tolerance is usually relative
because timings on a shared machine vary by a fraction.

A metric the challenger lacks (or reports as NaN) fails its gates: a gate that cannot be
measured must not pass. A metric the *champion* lacks skips only the regression check; the
floor still applies.

Fail closed, like with like: every value carries the eval set it was measured on (``sources``:
metric → eval set id, ``"*"`` for every metric not named). The champion is re-scored on the
challenger's eval set by the promotion (:mod:`vsearch.registry.promotion`); a regression check
between two different eval sets fails, and a champion that could not be read or scored
(``champion_error``) fails the gate with the reason. Only a *missing* champion (no alias at
all: the first release) skips the regression checks.

Pure functions: dictionaries in, a :class:`GateReport` out. The promotion flow reads the metrics,
calls :func:`evaluate_gates` and moves the ``champion`` alias only when ``report.passed``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from vsearch.errors import GateFailed
from vsearch.settings import GatesSettings

FLOOR = "floor"
REGRESSION = "regression"
CHAMPION = "reference"  # kind of the check that the champion could be measured at all
ANY = "*"  # sources key: the eval set of every metric not named
_REL_EPS = 1e-9  # a value exactly at its bar passes despite float rounding (0.5 - 0.03 != 0.47)


@dataclass(frozen=True)
class GateResult:
    """One check of one metric.

    Attributes:
        name: ``"<metric> floor"`` or ``"<metric> vs champion"``.
        metric: the metric's name in the evaluation report.
        kind: :data:`FLOOR` or :data:`REGRESSION`.
        value: the challenger's value (``None`` when missing).
        reference: the floor, or the champion's value (``None`` when the champion lacks it).
        threshold: the bar actually applied (floor, or champion value minus/plus tolerance).
        margin: how far the value clears the bar (positive = passes, in the metric's unit).
        passed: whether the check passed.
        note: why, in words, when it is not a plain comparison.
        eval_set: where the challenger's value was measured (eval set id, or the load run).
        reference_eval_set: where the champion's value was measured (regression checks).
    """

    name: str
    metric: str
    kind: str
    value: float | None
    reference: float | None
    threshold: float | None
    margin: float | None
    passed: bool
    note: str = ""
    eval_set: str = ""
    reference_eval_set: str = ""


@dataclass(frozen=True)
class GateReport:
    """Every check, and the verdict (all passed).

    Attributes:
        gates: the checks, floors first.
        family: the gate family applied (``truth`` or ``click``), when known.
        notes: what the verdict rests on in words (first release, champion re-scored ...).
    """

    gates: list[GateResult] = field(default_factory=list)
    family: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failures(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def summary(self) -> str:
        """One line: the verdict and, on failure, which checks failed by how much."""
        if self.passed:
            return f"promotion gate passed ({len(self.gates)} checks)"
        parts = []
        for g in self.failures:
            if g.value is None or g.kind == CHAMPION:
                parts.append(f"{g.name}: {g.note}")
            else:
                parts.append(f"{g.name}: {_fmt(g.value)} vs bar {_fmt(g.threshold)}")
        return "promotion gate failed: " + "; ".join(parts)

    def markdown(self) -> str:
        """A table for Prefect artifacts, MLflow and people."""
        family = f" ({self.family} metrics)" if self.family else ""
        lines = [f"**Promotion gate{family}: {'passed' if self.passed else 'FAILED'}**", ""]
        lines += [f"- {n}" for n in self.notes]
        lines += [
            "",
            "| check | value | reference | bar | margin | result | value measured on "
            "| reference measured on |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for g in self.gates:
            result = "pass" if g.passed else "**fail**"
            if g.note:
                result += f" ({g.note})"
            lines.append(
                f"| {g.name} | {_fmt(g.value)} | {_fmt(g.reference)} | {_fmt(g.threshold)} "
                f"| {_fmt(g.margin)} | {result} | {g.eval_set or '-'} "
                f"| {g.reference_eval_set or '-'} |"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "family": self.family,
            "notes": list(self.notes),
            "gates": [asdict(g) for g in self.gates],
        }

    def raise_if_failed(self) -> None:
        """Raise :class:`~vsearch.errors.GateFailed` (CLI exit 2) naming the failed checks."""
        if not self.passed:
            raise GateFailed(self.summary())


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _number(metrics: Mapping[str, Any] | None, key: str) -> float | None:
    """The metric as a finite float, or ``None`` when absent, non-numeric or NaN."""
    if metrics is None or key not in metrics:
        return None
    raw = metrics[key]
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def _source(sources: Mapping[str, str] | None, metric: str) -> str:
    if not sources:
        return ""
    return sources.get(metric, sources.get(ANY, ""))


def evaluate_gates(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    floors: Mapping[str, float],
    tolerances: Mapping[str, float],
    lower_is_better: Collection[str] = (),
    relative: Collection[str] = (),
    *,
    challenger_sources: Mapping[str, str] | None = None,
    champion_sources: Mapping[str, str] | None = None,
    champion_error: str | None = None,
    family: str = "",
    notes: Sequence[str] = (),
) -> GateReport:
    """Check a challenger's metrics against floors and against the champion's metrics.

    Args:
        challenger: flat ``metric -> value`` of the candidate (e.g. ``click_recall@10``).
        champion: the same for the current champion, measured on the challenger's eval set;
            ``None`` when there is none yet (the first release: only the floors apply) or when
            it could not be measured (``champion_error``).
        floors: ``metric -> bar``; a minimum, or a maximum for ``lower_is_better`` metrics.
        tolerances: ``metric -> allowed regression`` vs the champion (>= 0).
        lower_is_better: metrics where smaller is better (latency).
        relative: metrics whose tolerance is a share of the champion's value.
        challenger_sources, champion_sources: ``metric -> where it was measured`` (``"*"``:
            every metric not named). A regression check of a metric whose two values come
            from different default (``"*"``) eval sets fails: never compare unlike with unlike.
        champion_error: why the champion could not be loaded or scored: one failing check
            (fail closed), and no regression check can pass without a champion figure.
        family: the gate family applied (for the report).
        notes: lines for the report.

    Returns:
        A :class:`GateReport`; floors first, then the champion check, then regression checks.

    Raises:
        ValueError: a negative tolerance (a tolerance can only loosen the comparison).
    """
    lower = set(lower_is_better)
    rel = set(relative)
    results: list[GateResult] = []
    for metric, floor in floors.items():
        check = _floor_check(metric, _number(challenger, metric), float(floor), metric in lower)
        results.append(replace(check, eval_set=_source(challenger_sources, metric)))
    for metric, tol in tolerances.items():
        if tol < 0:
            raise ValueError(f"tolerance of {metric} must be >= 0, got {tol}")
    if champion_error is not None:
        results.append(
            GateResult(
                "champion re-scored", CHAMPION, CHAMPION, None, None, None, None, False,
                champion_error, _source(challenger_sources, ANY),
            )
        )  # fmt: skip
        return GateReport(results, family, list(notes))
    if champion is None:
        return GateReport(results, family, list(notes))
    for metric, tol in tolerances.items():
        mine, theirs = _source(challenger_sources, metric), _source(champion_sources, metric)
        check = _regression_check(
            metric,
            _number(challenger, metric),
            _number(champion, metric),
            float(tol),
            metric in lower,
            metric in rel,
        )
        named = metric in (challenger_sources or {}) or metric in (champion_sources or {})
        if not named and mine and theirs and mine != theirs:
            check = replace(
                check, passed=False, note=f"measured on different eval sets ({mine} vs {theirs})"
            )
        results.append(replace(check, eval_set=mine, reference_eval_set=theirs))
    return GateReport(results, family, list(notes))


def evaluate_promotion_gates(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    gates: GatesSettings,
    *,
    has_truth: bool = True,
    challenger_sources: Mapping[str, str] | None = None,
    champion_sources: Mapping[str, str] | None = None,
    champion_error: str | None = None,
    notes: Sequence[str] = (),
) -> GateReport:
    """:func:`evaluate_gates` with the family, floors, tolerances and directions of
    ``registry.gates`` (click gates without truth, under ``family: auto``)."""
    family = gates.family_for(has_truth)
    floors, tolerances = gates.thresholds(family)
    return evaluate_gates(
        challenger,
        champion,
        floors,
        tolerances,
        lower_is_better=gates.lower_is_better,
        relative=gates.relative,
        challenger_sources=challenger_sources,
        champion_sources=champion_sources,
        champion_error=champion_error,
        family=family,
        notes=notes,
    )


def _floor_check(metric: str, value: float | None, floor: float, lower: bool) -> GateResult:
    name = f"{metric} {'ceiling' if lower else 'floor'}"
    if value is None:
        note = "challenger has no value"
        return GateResult(name, metric, FLOOR, None, floor, floor, None, False, note)
    margin = floor - value if lower else value - floor
    return GateResult(name, metric, FLOOR, value, floor, floor, margin, _clears(margin, floor))


def _regression_check(
    metric: str,
    value: float | None,
    ref: float | None,
    tol: float,
    lower: bool,
    relative: bool,
) -> GateResult:
    name = f"{metric} vs champion"
    if value is None:
        note = "challenger has no value"
        return GateResult(name, metric, REGRESSION, None, ref, None, None, False, note)
    if ref is None:
        note = "champion has no value: not compared"
        return GateResult(name, metric, REGRESSION, value, None, None, None, True, note)
    allowed = tol * abs(ref) if relative else tol
    threshold = ref + allowed if lower else ref - allowed
    margin = threshold - value if lower else value - threshold
    return GateResult(
        name, metric, REGRESSION, value, ref, threshold, margin, _clears(margin, threshold)
    )


def _clears(margin: float, bar: float) -> bool:
    return margin >= -_REL_EPS * max(1.0, abs(bar))
