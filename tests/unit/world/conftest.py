"""Fixtures: small demo worlds generated once per session (tiny images, real pipeline).

Why real generation and not hand-built frames: these tests check the generator itself, so they
run it end to end at a size that keeps the whole folder well under a minute.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from vsearch.settings import WorldSettings, load_settings

PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"
IMAGE_SIZE = 96
ITEMS, QUERIES, SEED = 150, 80, 11


@pytest.fixture(scope="session")
def world_settings() -> WorldSettings:
    """The project's world settings with small images (fast, same code paths)."""
    return load_settings(PARAMS, environ={}).world.model_copy(update={"image_size": IMAGE_SIZE})


@pytest.fixture(scope="session")
def small_world(
    tmp_path_factory: pytest.TempPathFactory, world_settings: WorldSettings
) -> tuple[Path, Path]:
    """A generated drop and its truth folder (read-only for tests)."""
    from vsearch.world import generate_world

    base = tmp_path_factory.mktemp("world")
    drop, truth = base / "drop", base / "drop.truth"
    generate_world(world_settings, drop, seed=SEED, items=ITEMS, queries=QUERIES, workers=1)
    return drop, truth


def tree_hashes(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders, keyed by (folder index, relative path)."""
    out = {}
    for i, folder in enumerate(folders):
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                out[f"{i}/{f.relative_to(folder)}"] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def hash_tree() -> Callable[..., dict[str, str]]:
    """``hash_tree(*folders)``: {relative path: sha256} of every file (determinism checks)."""
    return tree_hashes
