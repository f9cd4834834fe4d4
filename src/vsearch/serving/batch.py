"""``/search_batch``: many photos per call, merged across concurrent callers by BentoML.

How the batching works: the endpoint is ``@bentoml.api(batchable=True)`` with one argument, a
list of :class:`BatchQuery`. Each HTTP request sends its own list; BentoML's adaptive dispatcher
concatenates the lists of requests that arrive close together (up to
``serving.batch_max_size`` photos, waiting as long as its latency model says pays off) into one
call of :func:`run_batch`, and splits the returned list back per request. One call decodes every
photo, runs the model once per distinct ``k`` and searches the index as a batch.

Why JSON with base64 photos and not multipart files: BentoML can batch a ``list[Path]`` of
uploaded files, but a batchable API takes exactly one argument, so per-photo options (box,
category, k) could not travel with the files. A list of small JSON objects carries both.

Filters travel per photo too (``price_min``, ``price_max``, ``seller``, ``in_stock``; see
:mod:`vsearch.search.filters`): queries of a merged batch with equal filters share one mask and
one engine call. An unknown field or a value of the wrong type fails the request's validation
(BentoML answers 400 naming the field); a filter that cannot match (``price_min > price_max``,
an unknown seller) is a 422 in that photo's slot.

Every answer lists the photo's candidate boxes; ``candidate`` picks one to search (an index
past the photo's candidates is a 422 in its slot, found after the model ran: the rest of the
group is searched again without it).

Errors are per photo: one bad photo gets ``{"error": ..., "status": 4xx}`` in its slot and the
others are answered normally (a batch must not fail because of one caller's bad input).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from vsearch.errors import BadInput, NoSuchCandidate
from vsearch.search.filters import SearchFilter
from vsearch.serving.http import HttpError, parse_box, parse_filter, status_of
from vsearch.serving.state import NotLoaded, ServingState
from vsearch.serving.web import response_json

log = logging.getLogger(__name__)


class BatchQuery(BaseModel):
    """One photo of a batch."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="the photo's bytes, base64-encoded")
    box: list[float] | str | None = Field(
        None, description="normalised x0,y0,x1,y1 to search instead of detecting"
    )
    candidate: int | None = Field(
        None, description="search this candidate box (index into an answer's candidates)"
    )
    category: str | list[str] | None = Field(
        None, description="search only this category (several: search those instead of routing)"
    )
    k: int | None = Field(None, description="results wanted (default search.default_k)")
    price_min: float | None = Field(None, description="only listings priced at least this")
    price_max: float | None = Field(None, description="only listings priced at most this")
    seller: str | list[str] | None = Field(None, description="only listings of these sellers")
    in_stock: bool | None = Field(
        None, description="true: drop listings whose stock is 0 (unknown stock passes)"
    )


def _error(status: int, message: str) -> dict[str, Any]:
    return {"error": message, "status": status}


@dataclass
class PhotoQuery:
    """One photo to search, its fields parsed but not yet checked against the served pipeline
    (what ``k`` and categories are valid depends on the release a batch leases)."""

    data: bytes
    k: int
    box: list[float] | None = None
    category: str | list[str] | None = None
    filters: SearchFilter | None = None
    candidate: int | None = None


def _to_photo(q: BatchQuery, default_k: int, max_len: int) -> PhotoQuery:
    """A ``/search_batch`` item as a :class:`PhotoQuery` (raises HttpError)."""
    sellers = [q.seller] if isinstance(q.seller, str) else list(q.seller or [])
    filters = parse_filter(q.price_min, q.price_max, sellers, q.in_stock, max_len)
    if isinstance(q.category, list) and not q.category:
        raise HttpError(422, "category: an explicit list of categories must not be empty")
    box = parse_box(q.box)
    try:
        data = base64.b64decode(q.image, validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(400, "image is not valid base64") from None
    k = default_k if q.k is None else q.k
    return PhotoQuery(data, k, box, q.category or None, filters, q.candidate)


def _prepare(
    pipeline: Any, q: PhotoQuery
) -> tuple[int, Any, np.ndarray | None, np.ndarray, SearchFilter | None, int | None]:
    """Checked ``(k, category, box, pixels, filter, candidate)`` of one query (raises
    HttpError)."""
    from vsearch.search.images import check_box

    try:
        k = pipeline.check_k(q.k)
        if isinstance(q.category, list):
            category: Any = [pipeline.check_category(c) for c in q.category]
        else:
            category = pipeline.check_category(q.category)
        box = check_box(q.box)
        candidate = pipeline.check_candidate(q.candidate)
        if candidate is not None and box is not None:
            raise BadInput("give a box or a candidate, not both")
        filters = pipeline.check_filter(q.filters)
    except BadInput as exc:
        raise HttpError(422, str(exc)) from None
    try:
        pixels = pipeline.decode(q.data)
    except BadInput as exc:
        raise HttpError(status_of(exc), str(exc)) from None
    return k, category, box, pixels, filters, candidate


def search_many(
    state: ServingState, queries: list[PhotoQuery | HttpError]
) -> list[dict[str, Any] | HttpError]:
    """Answer photos in one lease of the served pipeline: one model call and one index search
    per distinct ``k``. A refused photo gets its :class:`HttpError` in its slot (a batch must
    not fail because of one caller's bad input); an item that already is one stays one.

    Each answer carries ``batch_size`` (photos of this call) and its share of the batch's
    stage times (:mod:`vsearch.search.pipeline`).

    Raises:
        NotLoaded: no pipeline is served (every caller's 503).
    """
    n = len(queries)
    out: list[dict[str, Any] | HttpError | None] = [None] * n
    with state.lease() as served:
        pipeline = served.pipeline
        ready: dict[int, list[tuple[Any, ...]]] = {}
        t0 = time.perf_counter()
        for i, q in enumerate(queries):
            if isinstance(q, HttpError):
                out[i] = q
                continue
            try:
                k, *checked = _prepare(pipeline, q)
            except HttpError as exc:
                out[i] = exc
                continue
            ready.setdefault(k, []).append((i, *checked))
        decode_ms = (time.perf_counter() - t0) * 1e3 / max(n, 1)
        for k, group in ready.items():
            try:
                group, responses = _search_group(pipeline, k, group, out)
            except BadInput as exc:  # a check only the group as a whole could fail: its slots
                for g in group:
                    out[g[0]] = HttpError(status_of(exc), str(exc))
                continue
            for g, r in zip(group, responses, strict=True):
                r.timings_ms["decode"] = decode_ms
                r.timings_ms["total"] += decode_ms
                body = response_json(served, r)
                body["batch_size"] = n
                out[g[0]] = body
    return [o if o is not None else HttpError(500, "no answer") for o in out]


def _search_group(
    pipeline: Any, k: int, group: list[tuple[Any, ...]], out: list[Any]
) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """Search the photos of one ``k``; a photo lacking its chosen candidate (known only after
    the model ran) gets its own 422 in ``out`` and the others are searched again."""
    while True:
        try:
            return group, _search_once(pipeline, k, group)
        except NoSuchCandidate as exc:
            bad = set(exc.rows)
            for j, c, m in zip(exc.rows, exc.chosen, exc.counts, strict=True):
                out[group[j][0]] = HttpError(
                    422, f"no such candidate box: candidate {c} asked for, the photo has {m}"
                )
            group = [g for j, g in enumerate(group) if j not in bad]
            if not group:
                return [], []


def _search_once(pipeline: Any, k: int, group: list[tuple[Any, ...]]) -> list[Any]:
    """One model pass and search for ``group``'s ``(slot, category, box, pixels, filter,
    candidate)`` tuples."""
    images = torch.from_numpy(np.stack([g[3] for g in group]))
    boxes = np.full((len(group), 4), np.nan, dtype=np.float32)
    for j, g in enumerate(group):
        if g[2] is not None:
            boxes[j] = g[2]
    use_boxes = None if np.isnan(boxes).all() else boxes
    chosen = [g[5] for g in group]
    with torch.inference_mode():
        return pipeline.search_images(
            images,
            k,
            use_boxes,
            [g[1] for g in group],
            filters=[g[4] for g in group],
            candidates=chosen if any(c is not None for c in chosen) else None,
        )


def run_batch(state: ServingState, queries: list[BatchQuery]) -> list[dict[str, Any]]:
    """Answer every query of a merged batch (one slot per query, never raises for bad input)."""
    default_k = state.settings.search.default_k
    max_len = state.settings.serving.max_field_chars
    photos: list[PhotoQuery | HttpError] = []
    for q in queries:
        try:
            photos.append(_to_photo(q, default_k, max_len))
        except HttpError as exc:
            photos.append(exc)
    n = len(queries)
    try:
        answers = search_many(state, photos)
    except NotLoaded as exc:
        return [_error(503, str(exc))] * n
    except BadInput as exc:  # a check that only the batch as a whole could fail
        return [_error(400, str(exc))] * n
    return [_error(a.status, a.message) if isinstance(a, HttpError) else a for a in answers]
