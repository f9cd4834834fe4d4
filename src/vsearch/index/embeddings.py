"""The index's input: one row per catalog item (item_id, category, binary code, float vector).

Why a contract of its own: the engine is built and benchmarked before any model exists, and the
training stage will later write exactly this folder. Keeping the format here (npy for the big
arrays so they can be memory-mapped, parquet for the ids, json for the model identity) means the
builder never cares where the embeddings came from.

Folder layout::

    DIR/
      meta.json        {"format": 1, "n": ..., "bits": ..., "dim": ..., "model": {...}}
      items.parquet    item_id (string), category (string)
      codes.npy        uint8[n, bits/8]   packed sign bits (bit i of byte j = bit 8j+i)
      vectors.npy      float32[n, d]      L2-normalised real-valued embeddings
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
META_FILE = "meta.json"
ITEMS_FILE = "items.parquet"
CODES_FILE = "codes.npy"
VECTORS_FILE = "vectors.npy"


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced the codes and vectors.

    Why: a release built from one model's codes must never be searched with another model's
    queries (the bits would mean different things); the fingerprint travels into the manifest
    and is checked when a release is opened.
    """

    name: str = "unknown"
    version: str = "0"
    fingerprint: str = "none"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelInfo:
        return cls(
            name=str(raw.get("name", "unknown")),
            version=str(raw.get("version", "0")),
            fingerprint=str(raw.get("fingerprint", "none")),
        )


def as_str_array(values: Sequence[str] | np.ndarray, name: str) -> np.ndarray:
    """A 1-d object array of Python ``str`` (rejecting empty and non-string values)."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    for v in arr:
        if not isinstance(v, str) or not v:
            raise ValueError(f"{name} must hold non-empty strings, got {v!r}")
    return arr


def check_codes(codes: np.ndarray, n: int | None = None, nbytes: int | None = None) -> np.ndarray:
    """Validate packed binary codes: ``uint8[n, bits/8]``, C-contiguous."""
    codes = np.asarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise ValueError(f"codes must be uint8[n, bits/8], got {codes.dtype}{list(codes.shape)}")
    if n is not None and codes.shape[0] != n:
        raise ValueError(f"codes has {codes.shape[0]} rows, expected {n}")
    if nbytes is not None and codes.shape[1] != nbytes:
        raise ValueError(f"codes have {codes.shape[1] * 8} bits, expected {nbytes * 8}")
    return np.ascontiguousarray(codes)


def check_vectors(vectors: np.ndarray, n: int | None = None, dim: int | None = None) -> np.ndarray:
    """Validate float vectors: ``float32[n, d]`` (float16/float64 are converted), finite."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.dtype.kind != "f":
        raise ValueError(f"vectors must be float[n, d], got {vectors.dtype}{list(vectors.shape)}")
    if n is not None and vectors.shape[0] != n:
        raise ValueError(f"vectors has {vectors.shape[0]} rows, expected {n}")
    if dim is not None and vectors.shape[1] != dim:
        raise ValueError(f"vectors have dimension {vectors.shape[1]}, expected {dim}")
    if vectors.dtype != np.float32:
        vectors = vectors.astype(np.float32)
    if vectors.size and not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinite values")
    return np.ascontiguousarray(vectors)


@dataclass(frozen=True, eq=False)
class EmbeddingSet:
    """Items to index: ids, categories, packed codes and float vectors, plus the model identity.

    Args:
        item_ids: ``str[n]``, unique.
        categories: ``str[n]``, the partition each item belongs to.
        codes: ``uint8[n, bits/8]`` packed binary codes (from the hash head).
        vectors: ``float32[n, d]`` real-valued embeddings used for the re-rank.
        model: which model produced them.
    """

    item_ids: np.ndarray
    categories: np.ndarray
    codes: np.ndarray
    vectors: np.ndarray
    model: ModelInfo = ModelInfo()

    def __post_init__(self) -> None:
        ids = as_str_array(self.item_ids, "item_ids")
        n = len(ids)
        cats = as_str_array(self.categories, "categories")
        if len(cats) != n:
            raise ValueError(f"categories has {len(cats)} rows, item_ids has {n}")
        codes = check_codes(self.codes, n)
        vectors = check_vectors(self.vectors, n)
        if n and len(set(ids.tolist())) != n:
            raise ValueError("item_ids must be unique; de-duplicate the input first")
        object.__setattr__(self, "item_ids", ids)
        object.__setattr__(self, "categories", cats)
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "vectors", vectors)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def bits(self) -> int:
        return int(self.codes.shape[1]) * 8

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def subset(self, rows: np.ndarray) -> EmbeddingSet:
        """Rows selected by an index array or boolean mask (same model)."""
        rows = np.asarray(rows)
        return EmbeddingSet(
            self.item_ids[rows],
            self.categories[rows],
            self.codes[rows],
            self.vectors[rows],
            self.model,
        )

    def save(self, folder: str | Path) -> Path:
        """Write the folder layout described in the module docstring; returns the folder."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / CODES_FILE, self.codes)
        np.save(out / VECTORS_FILE, self.vectors)
        table = pa.table(
            {
                "item_id": pa.array(self.item_ids.tolist(), pa.string()),
                "category": pa.array(self.categories.tolist(), pa.string()),
            }
        )
        pq.write_table(table, out / ITEMS_FILE)
        meta = {
            "format": FORMAT_VERSION,
            "n": len(self),
            "bits": self.bits,
            "dim": self.dim,
            "model": self.model.to_dict(),
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = False) -> EmbeddingSet:
        """Read a folder written by :meth:`save` (or by the training stage).

        Args:
            folder: the embeddings folder.
            mmap: memory-map the vectors instead of reading them (large catalogs).

        Raises:
            ValueError: a file is missing or the arrays disagree with ``meta.json``.
        """
        import pyarrow.parquet as pq

        src = Path(folder)
        missing = [
            f for f in (META_FILE, ITEMS_FILE, CODES_FILE, VECTORS_FILE) if not (src / f).is_file()
        ]
        if missing:
            raise ValueError(
                f"{src} is not an embeddings folder: missing {', '.join(missing)} "
                "(expected meta.json, items.parquet, codes.npy, vectors.npy)"
            )
        meta = json.loads((src / META_FILE).read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{src}/{META_FILE}: unsupported format {meta.get('format')!r}")
        table = pq.read_table(src / ITEMS_FILE, columns=["item_id", "category"])
        codes = np.load(src / CODES_FILE)
        vectors = np.load(src / VECTORS_FILE, mmap_mode="r" if mmap else None)
        emb = cls(
            np.asarray(table.column("item_id").to_pylist(), dtype=object),
            np.asarray(table.column("category").to_pylist(), dtype=object),
            codes,
            vectors,
            ModelInfo.from_dict(meta.get("model", {})),
        )
        if (emb.bits, emb.dim, len(emb)) != (meta.get("bits"), meta.get("dim"), meta.get("n")):
            raise ValueError(
                f"{src}: arrays (n={len(emb)}, bits={emb.bits}, dim={emb.dim}) disagree with "
                f"{META_FILE} (n={meta.get('n')}, bits={meta.get('bits')}, dim={meta.get('dim')})"
            )
        return emb
