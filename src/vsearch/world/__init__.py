"""The demo world: a seeded procedural shop (products, sellers, real-shot queries, clicks).

Why lazy exports: ``vsearch world`` and the test fixtures import this package, and importing
it must stay cheap (no numpy/PIL/pandas until a world is actually generated).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vsearch.world.generate import WorldSummary, default_truth_dir, generate_world
    from vsearch.world.preview import render_preview

__all__ = ["WorldSummary", "default_truth_dir", "generate_world", "render_preview"]

_EXPORTS = {
    "WorldSummary": "vsearch.world.generate",
    "default_truth_dir": "vsearch.world.generate",
    "generate_world": "vsearch.world.generate",
    "render_preview": "vsearch.world.preview",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vsearch.world' has no attribute {name!r}")
