"""BentoML service ``vsearch``: the HTTP face of the system.

Today it serves what exists: which data drops are ingested (with their DVC hashes) and which
index release is current, plus BentoML's own ``/livez``, ``/readyz``, ``/metrics`` and
``/docs.json``. Search endpoints join when the model and index are wired in (the service issue).

Why settings come from ``VSEARCH_PARAMS``: BentoML imports this module in its own worker
processes, so the params file cannot be passed as an argument; ``vsearch serve`` sets it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import bentoml

from vsearch import __version__
from vsearch.settings import load_settings

log = logging.getLogger(__name__)
PARAMS_ENV = "VSEARCH_PARAMS"
ROOT_ENV = "VSEARCH_ROOT"


def _current_release(indexes_dir: Path) -> str | None:
    pointer = indexes_dir / "CURRENT"
    return pointer.read_text().strip() if pointer.is_file() else None


@bentoml.service(name="vsearch", traffic={"timeout": 30})
class VSearchService:
    """Loads settings once at start-up; endpoints read state, never mutate it."""

    def __init__(self) -> None:
        self.root = Path(os.environ.get(ROOT_ENV, ".")).resolve()
        self.settings = load_settings(self.root / os.environ.get(PARAMS_ENV, "params.yaml"))
        log.info("vsearch service %s, project root %s", __version__, self.root)

    def _abs(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    @bentoml.api(route="/info")
    def info(self) -> dict[str, Any]:
        """Version, ingested drops (with DVC hashes) and the current index release."""
        from vsearch.data.ingest import list_drops

        raw = self._abs(self.settings.ingest.raw_dir)
        return {
            "version": __version__,
            "drops": list_drops(raw) if raw.is_dir() else [],
            "index_release": _current_release(self._abs(self.settings.project.indexes_dir)),
        }
