"""Training learns: a short click-trained run beats the same network untrained by a clear margin.

Why: every other training test checks mechanics (shapes, gradients, resume); a change that
silently stops learning (a detached loss, a wrong label join, a learning rate of zero) would
pass them all. This one mines a small shop that is not the demo world (tests/foreign.py) and
compares the run's own held-aside click recall@10 after a short run with the untrained net's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import kit
from tests.foreign import write_snapshot
from vsearch.mining.stage import mine_drop
from vsearch.training.loop import train
from vsearch.training.stage import choose_labels

pytestmark = [pytest.mark.unit, pytest.mark.slow]

STEPS = 400
MARGIN = 0.2


def test_a_short_run_beats_the_untrained_net_clearly(tmp_path: Path) -> None:
    drop = tmp_path / "shop"
    write_snapshot(
        drop, drop_id="shop", products=24, queries=240, start=datetime.now(UTC) - timedelta(3)
    )
    s = kit.tiny_settings(epochs=1, steps_per_epoch=STEPS, val_share=0.25, warmup_steps=10)
    mine_drop(drop, tmp_path / "mining", s.mining, seed=s.project.seed, split=s.split)
    data = kit.train_data(drop, choose_labels(drop, tmp_path / "mining"), s)

    def recall(steps: int) -> float:
        res = train(
            s,
            data,
            tmp_path / f"run{steps}",
            max_steps=steps,
            progress=False,
            write_embeddings=False,
        )
        return res.metrics["val_click_recall@10"]

    untrained, trained = recall(0), recall(STEPS)
    print(f"val click recall@10: untrained {untrained:.3f}, {STEPS} steps {trained:.3f}")
    assert trained >= untrained + MARGIN
