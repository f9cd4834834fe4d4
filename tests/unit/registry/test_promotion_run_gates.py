"""The promotion's gate step: the champion reference decides, every figure names its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsearch.registry.promotion import Candidate, ChampionReference, run_gates
from vsearch.settings import Settings

pytestmark = pytest.mark.unit

EVAL_SET = {"id": "shop:time0.2:40q:0123456789ab", "truth": False, "queries": 40}
CLICKS = {"click_recall@10": 0.6, "click_category_acc_fused": 0.8}
LATENCY = {"p95_ms": 40.0, "requests": 6}


def _cand(metrics: dict | None = None) -> Candidate:
    m = {
        "model": dict(CLICKS),
        "eval_set": EVAL_SET,
        "inputs": {"drop": "data/raw/shop", "truth": None, "mining": "runs/mining"},
        **(metrics or {}),
    }
    return Candidate(Path("runs/train"), "f" * 64, "4", m)


def test_first_release_gates_on_the_click_floors_only() -> None:
    rep = run_gates(Settings(), _cand(), LATENCY, ChampionReference(first_release=True))
    assert rep.passed and rep.family == "click"
    assert all(g.kind == "floor" for g in rep.gates)
    assert any("first release" in n for n in rep.notes)
    assert {g.eval_set for g in rep.gates if g.metric != "latency_p95_ms"} == {EVAL_SET["id"]}


def test_the_champion_rescored_on_the_same_eval_set_is_compared() -> None:
    champ = ChampionReference(
        version="3",
        metrics={"click_recall@10": 0.7, "click_category_acc_fused": 0.8},
        eval_set=EVAL_SET["id"],
        latency_p95_ms=38.0,
    )
    rep = run_gates(Settings(), _cand(), LATENCY, champ)
    failed = {g.name for g in rep.failures}
    assert failed == {"click_recall@10 vs champion"}  # 0.6 < 0.7 - 0.03
    g = next(g for g in rep.gates if g.name == "click_recall@10 vs champion")
    assert g.eval_set == g.reference_eval_set == EVAL_SET["id"]
    lat = next(g for g in rep.gates if g.name == "latency_p95_ms vs champion")
    assert "version 3" in lat.reference_eval_set and lat.reference == 38.0


def test_a_champion_that_could_not_be_scored_fails_closed() -> None:
    champ = ChampionReference(version="3", error="champion version 3 could not be re-scored")
    rep = run_gates(Settings(), _cand(), LATENCY, champ)
    assert not rep.passed and "could not be re-scored" in rep.summary()


def test_an_evaluation_without_an_eval_set_fails_closed() -> None:
    cand = Candidate(Path("runs/train"), "f" * 64, "4", {"model": dict(CLICKS)})
    rep = run_gates(Settings(), cand, LATENCY, ChampionReference(first_release=True))
    assert not rep.passed and "re-run `vsearch evaluate`" in rep.summary()


def test_the_gates_never_read_the_baselines() -> None:
    """Baselines are off the critical path: none measured, or terrible ones on other data, or a
    model far below the oracle: the gate's verdict is the same."""
    champ = ChampionReference(first_release=True)
    bare = run_gates(Settings(), _cand(), LATENCY, champ)
    figures = {
        "baselines": {"oracle": {"click_recall@10": 0.99}, "untrained": {"skipped": "why"}},
        "ratios": {"model_vs_oracle_click_recall@10": 0.6},
        "targets": {"oracle_ratio": {"target": 0.8, "value": 0.6, "met": False}},
        "baseline_figures": {"measured_at": "2026-01-01T00:00:00+00:00", "same_data": False},
    }
    with_figures = run_gates(Settings(), _cand(figures), LATENCY, champ)
    assert bare.passed and with_figures.passed
    assert bare.to_dict() == with_figures.to_dict()
