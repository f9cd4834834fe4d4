"""The promotion gate: may a challenger model replace the champion?

Two checks per metric (docs/operations.md#the-promotion-gate): an **absolute floor** (the challenger
must be good enough on its own) and **no regression** beyond a tolerance against the current
champion (a model may not quietly get worse release by release). Latency is lower-is-better, so its
floor is a ceiling and its regression check points the other way; its tolerance is usually relative
because timings on a shared machine vary by a fraction.

A metric the challenger lacks (or reports as NaN) fails its gates: a gate that cannot be
measured must not pass. A metric the *champion* lacks (an older model evaluated before the
metric existed) skips only the regression check; the floor still applies.

Pure functions: dictionaries in, a :class:`GateReport` out. The release flow reads the metrics,
calls :func:`evaluate_gates` and moves the ``champion`` alias only when ``report.passed``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from vsearch.errors import GateFailed
from vsearch.settings import GatesSettings

FLOOR = "floor"
REGRESSION = "regression"
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


@dataclass(frozen=True)
class GateReport:
    """Every check, and the verdict (all passed)."""

    gates: list[GateResult] = field(default_factory=list)

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
            if g.value is None:
                parts.append(f"{g.name}: {g.note}")
            else:
                parts.append(f"{g.name}: {_fmt(g.value)} vs bar {_fmt(g.threshold)}")
        return "promotion gate failed: " + "; ".join(parts)

    def markdown(self) -> str:
        """A table for Prefect artifacts, MLflow and people."""
        lines = [
            f"**Promotion gate: {'passed' if self.passed else 'FAILED'}**",
            "",
            "| check | value | reference | bar | margin | result |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for g in self.gates:
            result = "pass" if g.passed else "**fail**"
            if g.note:
                result += f" ({g.note})"
            lines.append(
                f"| {g.name} | {_fmt(g.value)} | {_fmt(g.reference)} | {_fmt(g.threshold)} "
                f"| {_fmt(g.margin)} | {result} |"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "gates": [asdict(g) for g in self.gates]}

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


def evaluate_gates(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    floors: Mapping[str, float],
    tolerances: Mapping[str, float],
    lower_is_better: Collection[str] = (),
    relative: Collection[str] = (),
) -> GateReport:
    """Check a challenger's metrics against floors and against the champion's metrics.

    Args:
        challenger: flat ``metric -> value`` of the candidate (e.g. ``identical_recall@10``).
        champion: the same for the current champion; ``None`` when there is none yet (only
            the floors apply).
        floors: ``metric -> bar``; a minimum, or a maximum for ``lower_is_better`` metrics.
        tolerances: ``metric -> allowed regression`` vs the champion (>= 0).
        lower_is_better: metrics where smaller is better (latency).
        relative: metrics whose tolerance is a share of the champion's value.

    Returns:
        A :class:`GateReport`; floors first, then regression checks, in key order.

    Raises:
        ValueError: a negative tolerance (a tolerance can only loosen the comparison).
    """
    lower = set(lower_is_better)
    rel = set(relative)
    results: list[GateResult] = []
    for metric, floor in floors.items():
        results.append(
            _floor_check(metric, _number(challenger, metric), float(floor), metric in lower)
        )
    for metric, tol in tolerances.items():
        if tol < 0:
            raise ValueError(f"tolerance of {metric} must be >= 0, got {tol}")
        if champion is None:
            continue
        results.append(
            _regression_check(
                metric,
                _number(challenger, metric),
                _number(champion, metric),
                float(tol),
                metric in lower,
                metric in rel,
            )
        )
    return GateReport(results)


def evaluate_promotion_gates(
    challenger: Mapping[str, Any], champion: Mapping[str, Any] | None, gates: GatesSettings
) -> GateReport:
    """:func:`evaluate_gates` with the floors, tolerances and directions of ``registry.gates``."""
    return evaluate_gates(
        challenger,
        champion,
        gates.floors,
        gates.tolerances,
        lower_is_better=gates.lower_is_better,
        relative=gates.relative,
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
