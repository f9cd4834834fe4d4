"""Build a searchable pipeline for any encoder: encode the catalog, index it, open it.

Why here: evaluation must run each system (the trained model, its baselines, the oracle)
through the exact code the service runs, from catalog photos to grouped results. This module
does the offline half for it — catalog photos through the encoder, an index release through
:func:`vsearch.index.builder.build_release` — and hands back a :class:`SearchPipeline` on it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vsearch.errors import BadInput
from vsearch.index.builder import build_release
from vsearch.index.embeddings import EmbeddingSet, ModelInfo
from vsearch.index.engine import Engine
from vsearch.search.encoder import Encoder
from vsearch.search.pipeline import SearchPipeline
from vsearch.settings import Settings

log = logging.getLogger(__name__)

INDEXES_SUBDIR = "indexes"


def model_info(encoder: Encoder) -> ModelInfo:
    """The identity recorded in the release (fingerprint checked when it is opened)."""
    return ModelInfo(
        name=str(getattr(encoder, "name", type(encoder).__name__)),
        version=str(getattr(encoder, "version", "0")),
        fingerprint=str(encoder.fingerprint),
    )


def encode_catalog(encoder: Encoder, catalog: pd.DataFrame, images: torch.Tensor) -> EmbeddingSet:
    """Catalog photos through ``encoder`` (detect → crop → embed, as queries are), as the
    index's input.

    Args:
        encoder: the system being indexed.
        catalog: the catalog table (``item_id``, ``category``), one row per image, same order.
        images: ``uint8[N, 3, S, S]`` catalog photos (:func:`vsearch.search.images.
            decode_images` decodes them the way uploads are decoded).
    """
    if len(catalog) != images.shape[0]:
        raise BadInput(f"catalog has {len(catalog)} rows but {images.shape[0]} images were given")
    enc = encoder.encode(images)
    return EmbeddingSet(
        catalog["item_id"].astype(str).to_numpy(object),
        catalog["category"].astype(str).to_numpy(object),
        enc.codes,
        enc.embeddings.astype(np.float32),
        model_info(encoder),
    )


def build_pipeline_from_embeddings(
    encoder: Encoder,
    catalog: pd.DataFrame,
    emb: EmbeddingSet,
    settings: Settings,
    workdir: Path,
) -> SearchPipeline:
    """Index ``emb`` as a release under ``workdir/indexes`` and open a pipeline on it.

    The release uses ``settings.index`` except its code length, which follows the encoder
    (a baseline's codes may differ from the model's ``index.bits``).
    """
    index_settings = settings.index
    if emb.bits != index_settings.bits:
        log.info("indexing %d-bit codes (index.bits is %d)", emb.bits, index_settings.bits)
        index_settings = index_settings.model_copy(update={"bits": emb.bits})
    indexes = Path(workdir) / INDEXES_SUBDIR
    threads = index_settings.build_threads or settings.project.threads
    build_release(emb, index_settings, indexes, threads=threads)
    engine = Engine.open_current(
        indexes, index_settings, expected_model=emb.model.fingerprint, writable=False
    )
    try:
        return SearchPipeline(encoder, engine, catalog, settings)
    except BaseException:
        engine.close()
        raise


def build_pipeline_for(
    encoder: Encoder,
    catalog: pd.DataFrame,
    images: torch.Tensor,
    settings: Settings,
    workdir: Path,
) -> SearchPipeline:
    """Encode the catalog photos with ``encoder``, build an index release in ``workdir`` and
    return the pipeline on it (close it when done: it holds the release's files open).

    Args:
        encoder: the system to evaluate (or serve).
        catalog: the drop's catalog table; row ``i`` is the listing of ``images[i]``.
        images: ``uint8[N, 3, S, S]`` catalog photos.
        settings: all settings (``index`` for the build, ``search`` for the pipeline).
        workdir: a folder of its own (releases go to ``workdir/indexes``).
    """
    emb = encode_catalog(encoder, catalog, images)
    return build_pipeline_from_embeddings(encoder, catalog, emb, settings, workdir)
