"""Warm start: a night fine-tunes the current champion instead of starting from random weights.

Why: each night trains within the same CPU budget on a new window of clicks; starting from the
champion lets what earlier nights learned carry over, so quality can accumulate across nights
instead of being rebuilt from scratch every time.

What carries over: every weight of the network when the champion's architecture (its
``NetConfig`` without the category list) equals this run's. Heads whose label space changed
start fresh or are mapped: the category head keeps the rows (weights and bias) of categories
both runs know and starts the new ones fresh; the virtual-ID proxies belong to the loss, not to
the model, and always start fresh (virtual IDs are re-clustered every night). A different
architecture, no champion, or ``train.warm_start: false`` trains from scratch, and the run
says why (``warm_start`` in its metrics: the champion's label, or ``scratch: <reason>``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vsearch.model.export import load_model
from vsearch.model.net import VSearchNet

log = logging.getLogger(__name__)

SCRATCH = "scratch"
#: NetConfig keys that may differ between the champion and this run (mapped, not compared).
LABEL_KEYS = ("categories",)
CATEGORY_HEAD = "category_head.fc."


@dataclass(frozen=True)
class WarmStart:
    """The weights a run may start from.

    Attributes:
        state: the champion's ``state_dict`` (CPU tensors).
        config: its ``NetConfig`` as a dict.
        label: what it is, for the logs and the run's metrics (``champion v3``, a path).
    """

    state: dict[str, torch.Tensor]
    config: dict[str, Any]
    label: str


def scratch(reason: str) -> str:
    """The ``warm_start`` value of a run that trains from random weights."""
    return f"{SCRATCH}: {reason}"


def read_warm_start(model_dir: Path, label: str | None = None) -> WarmStart:
    """A model folder (``vsearch.model.export.save_model``) as a warm start; the fingerprint is
    checked on load.

    Raises:
        ValueError: not a model folder, or its weights do not match its fingerprint.
    """
    net, meta = load_model(model_dir)
    return WarmStart(
        {k: v.detach().clone() for k, v in net.state_dict().items()},
        dict(meta["config"]),
        label or str(model_dir),
    )


def architecture_differences(champion: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The ``NetConfig`` keys (label spaces aside) whose values differ."""
    keys = (set(champion) | set(current)) - set(LABEL_KEYS)
    return sorted(k for k in keys if champion.get(k) != current.get(k))


def _map_category_head(
    net: VSearchNet, state: dict[str, torch.Tensor], old: list[str], new: list[str]
) -> dict[str, torch.Tensor]:
    """``state`` with the category head's rows rearranged into ``new``'s order: rows of
    categories both know are copied, the others keep ``net``'s fresh initialisation."""
    out = dict(state)
    old_row = {c: i for i, c in enumerate(old)}
    fresh = net.state_dict()
    for name in (f"{CATEGORY_HEAD}weight", f"{CATEGORY_HEAD}bias"):
        mapped = fresh[name].detach().clone()
        for i, c in enumerate(new):
            if c in old_row:
                mapped[i] = state[name][old_row[c]]
        out[name] = mapped
    return out


def apply_warm_start(net: VSearchNet, warm: WarmStart | str) -> str:
    """Load ``warm`` into ``net`` when the architectures match; returns the run's ``warm_start``.

    Args:
        warm: the weights, or the ``scratch: <reason>`` why there are none.

    Returns:
        ``warm.label`` when loaded, ``scratch: <reason>`` when ``net`` keeps its random weights.
    """
    if isinstance(warm, str):
        return warm
    current = net.config.to_dict()
    differs = architecture_differences(warm.config, current)
    if differs:
        return scratch(f"the architecture changed since {warm.label} ({', '.join(differs)})")
    old, new = list(warm.config["categories"]), list(current["categories"])
    state = warm.state if old == new else _map_category_head(net, warm.state, old, new)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:  # same config, other layout: a model of another code version
        first = str(exc).splitlines()[0]
        return scratch(f"{warm.label} does not fit this network ({first})")
    if old != new:
        kept = len(set(old) & set(new))
        log.info("category head: %d of %d categories carried over", kept, len(new))
    return warm.label
