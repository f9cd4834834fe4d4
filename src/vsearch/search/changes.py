"""Catalog changes made through the admin API, redone with a model: photos → index rows.

Why here: an admin upsert is a listing's fields and its photo (:mod:`vsearch.index.changeset`);
its codes and vector depend on the model. The service encodes an upload when it arrives, a
release built by another model must encode the stored photo again, and a service loading a
release encodes the changes made after the release was built. All three go through
:func:`encode_photos`, which decodes and encodes exactly as a search upload is (one decode,
:func:`vsearch.search.images.decode_bytes`; the encoder's own detect → crop → embed), so a
listing is searchable by its photo whichever model serves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from vsearch.index.changeset import ItemChange
from vsearch.index.embeddings import EmbeddingSet, ModelInfo
from vsearch.index.release_data import ADMIN_DROP, DROP_COLUMN, ReleaseData
from vsearch.search.encoder import Encoded, Encoder
from vsearch.search.images import decode_bytes
from vsearch.settings import SearchSettings

log = logging.getLogger(__name__)

NUMERIC_FIELDS = {"price": float, "quality": float, "sales": float}


def encode_photos(
    encoder: Encoder,
    photos: Sequence[bytes],
    boxes: Sequence[Sequence[float] | None],
    settings: SearchSettings,
    input_size: int,
) -> Encoded:
    """Decode and encode listing photos the way the service encodes an upload.

    Args:
        encoder: the model the codes and vectors are for.
        photos: image bytes.
        boxes: per photo, the product's normalised xyxy box, or ``None`` (detected).
        settings: the upload limits and formats (``search``).
        input_size: the side photos are decoded at (the pipeline's ``input_size``).
    """
    if len(photos) != len(boxes):
        raise ValueError(f"{len(photos)} photos but {len(boxes)} boxes")
    parts = []
    step = max(1, settings.encode_batch)
    for i in range(0, len(photos), step):  # one batch decoded at a time: bounded memory
        pixels = np.stack(
            [
                decode_bytes(
                    p,
                    input_size,
                    settings.max_image_bytes,
                    settings.max_image_pixels,
                    settings.image_formats,
                )
                for p in photos[i : i + step]
            ]
        )
        sub = list(boxes[i : i + step])
        box_arr = None
        if any(b is not None for b in sub):  # NaN rows are detected (NetEncoder.encode)
            box_arr = np.asarray(
                [b if b is not None else [np.nan] * 4 for b in sub], dtype=np.float32
            )
        with torch.inference_mode():
            parts.append(encoder.encode(torch.from_numpy(pixels), box_arr))
    return Encoded.concat(parts)


def model_info_of(encoder: Encoder) -> ModelInfo:
    return ModelInfo(
        str(getattr(encoder, "name", type(encoder).__name__)),
        str(getattr(encoder, "version", "0")),
        str(encoder.fingerprint),
    )


def upserts_as_embeddings(
    changes: Sequence[ItemChange], encoder: Encoder, settings: SearchSettings, input_size: int
) -> EmbeddingSet:
    """The upserts among ``changes`` encoded by ``encoder`` (an empty set when there are none)."""
    ups = [c for c in changes if c.op == "upsert"]
    model = model_info_of(encoder)
    if not ups:
        return EmbeddingSet(
            np.empty(0, dtype=object),
            np.empty(0, dtype=object),
            np.zeros((0, 1), dtype=np.uint8),
            np.zeros((0, 1), dtype=np.float32),
            model,
        )
    enc = encode_photos(
        encoder, [c.photo or b"" for c in ups], [c.box for c in ups], settings, input_size
    )
    return EmbeddingSet(
        np.asarray([c.item_id for c in ups], dtype=object),
        np.asarray([str((c.fields or {})["category"]) for c in ups], dtype=object),
        enc.codes,
        enc.embeddings.astype(np.float32),
        model,
    )


def change_rows(changes: Sequence[ItemChange]) -> pd.DataFrame:
    """Catalog rows of the upserts among ``changes`` (numbers typed, ``drop_id`` = admin)."""
    records = [c.fields for c in changes if c.op == "upsert" and c.fields]
    if not records:
        return pd.DataFrame()
    rows = pd.DataFrame.from_records(records)
    for col, kind in NUMERIC_FIELDS.items():
        if col in rows.columns:
            rows[col] = pd.to_numeric(rows[col], errors="coerce").astype(kind)
    rows[DROP_COLUMN] = ADMIN_DROP
    return rows


def fold_changes(
    emb: EmbeddingSet,
    data: ReleaseData,
    changes: Sequence[ItemChange],
    encoder: Encoder,
    settings: SearchSettings,
    input_size: int,
) -> tuple[EmbeddingSet, ReleaseData]:
    """The release's input with the change set applied: deleted listings removed, upserted
    ones (re)encoded from their stored photos by ``encoder`` and their rows in the catalog.

    Args:
        emb: the catalog embeddings of the data window (made by ``encoder``'s model).
        data: the window's catalog, product groups and lineage.
        changes: the latest change of each item (:meth:`ChangeSet.latest`).
        encoder: the model the release is built for.
        settings: upload limits and batch size (``search``).
        input_size: the side photos are decoded at.
    """
    if str(emb.model.fingerprint) != str(encoder.fingerprint):
        raise ValueError(
            f"embeddings of model {emb.model.fingerprint[:12]} cannot be folded with encoder "
            f"{str(encoder.fingerprint)[:12]}"
        )
    touched = {c.item_id for c in changes}
    keep = np.asarray([i not in touched for i in emb.item_ids.tolist()], dtype=bool)
    base = emb.subset(np.flatnonzero(keep))
    added = upserts_as_embeddings(changes, encoder, settings, input_size)
    if len(added):
        merged = EmbeddingSet(
            np.concatenate([base.item_ids, added.item_ids]),
            np.concatenate([base.categories, added.categories]),
            np.concatenate([base.codes, added.codes]),
            np.concatenate([base.vectors, added.vectors]),
            emb.model,
        )
    else:
        merged = base
    rows = change_rows(changes)
    catalog = data.catalog[~data.catalog["item_id"].astype(str).isin(touched)]
    if len(rows):
        catalog = pd.concat([catalog, rows], ignore_index=True)
    groups = data.groups
    if len(groups):
        groups = groups[~groups["item_id"].astype(str).isin(touched)]
    n_up = sum(c.op == "upsert" for c in changes)
    log.info("folded %d admin upserts and %d deletes", n_up, len(changes) - n_up)
    return merged, ReleaseData(catalog, groups, dict(data.lineage))
