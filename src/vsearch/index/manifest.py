"""The release manifest: what a release contains, which model made it, and every file's sha256.

Why: a release is served by processes that did not build it. Before serving, they must know
the files are the ones the builder wrote (a truncated copy, a disk error, a half-synced
replica) and that the codes come from the model they serve (a code from another model is
meaningless). The manifest records both, plus the counts, params, timings and tuned search
settings that explain the release to a human (``vsearch index info``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsearch.fsio import atomic_write_json
from vsearch.index.embeddings import ModelInfo

MANIFEST_FILE = "manifest.json"
# 2: releases carry their catalog, product groups and lineage (``data``, ``lineage``); format 1
# releases are still read (``vsearch index info``, rollback), but the service refuses them.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
_HASH_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class PartitionInfo:
    """One partition as recorded in the manifest."""

    name: str
    dir: str
    kind: str
    first_id: int
    n: int
    build_s: float
    bytes: int


@dataclass
class SearchDefaults:
    """Search settings the release is served with (from params, or measured by ``tune``)."""

    rerank_depth: int
    nprobe: int
    ef_search: int
    quantizer_ef: int
    uncertain_confidence: float
    max_extra_categories: int = 2
    extra_depth: float = 1.0
    source: str = "params"


@dataclass
class Manifest:
    """Everything about a release except its data."""

    version: str
    created_at: str
    model: ModelInfo
    bits: int
    dim: int
    n_items: int
    partitions: list[PartitionInfo]
    store: dict[str, Any]
    params: dict[str, Any]
    search: SearchDefaults
    timings: dict[str, float]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    parent: str | None = None
    folded: dict[str, Any] | None = None
    source: str | None = None
    tune: dict[str, Any] | None = None
    # Settings of the search pipeline calibrated for this release's model (``fusion_weight``,
    # chosen on click-labelled training queries by the evaluation); they override params.
    calibration: dict[str, Any] | None = None
    # The catalog snapshot and product groups inside the release (file names and counts:
    # ``vsearch.index.release_data``); ``None`` for a release built without them.
    data: dict[str, Any] | None = None
    # Where the release comes from: ``drops`` (drop_id, dvc_hash, path of each drop of the
    # window), ``mlflow`` (run_id, model_name, version), ``changes`` (the last change-set
    # sequence number folded in, upserts and deletes applied).
    lineage: dict[str, Any] | None = None
    format: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["model"] = self.model.to_dict()
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        if raw.get("format") not in READABLE_FORMATS:
            raise ValueError(f"unsupported manifest format {raw.get('format')!r}")
        data = dict(raw)
        data["model"] = ModelInfo.from_dict(raw["model"])
        data["partitions"] = [PartitionInfo(**p) for p in raw["partitions"]]
        data["search"] = SearchDefaults(**raw["search"])
        return cls(**data)

    def checksum_files(self, folder: Path, relpaths: list[str]) -> None:
        """Record size and sha256 of each file (relative to the release folder)."""
        self.files = {
            rel: {"sha256": sha256_file(folder / rel), "bytes": (folder / rel).stat().st_size}
            for rel in sorted(relpaths)
        }

    def verify_files(self, folder: Path) -> list[str]:
        """Problems found (missing file, size or sha256 differs); empty when all is well."""
        problems = []
        for rel, want in self.files.items():
            path = folder / rel
            if not path.is_file():
                problems.append(f"{rel}: missing")
            elif path.stat().st_size != want["bytes"]:
                problems.append(
                    f"{rel}: {path.stat().st_size} bytes, manifest says {want['bytes']}"
                )
            elif sha256_file(path) != want["sha256"]:
                problems.append(f"{rel}: sha256 differs from the manifest")
        return problems

    def write(self, folder: Path) -> Path:
        """Write ``manifest.json`` atomically (temp file, fsync, rename)."""
        return atomic_write_json(
            folder / MANIFEST_FILE, self.to_json(), sort_keys=False, default=None
        )

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {MANIFEST_FILE}: not a complete release")
        return cls.from_json(json.loads(path.read_text()))
