"""The Starlette app the BentoML service mounts: web page, photos, single search, admin.

Why these routes live here and not as ``@bentoml.api`` methods: BentoML APIs are POST-only and
turn any exception outside its own types (a malformed multipart body, a starlette
``HTTPException``) into a 500; its file inputs also accept a URL that the server would then
download. Here every refusal is a JSON ``{"error": ...}`` with the right 4xx status, and uploads
are only ever bytes from the request. ``/search_batch`` stays a BentoML API: it needs BentoML's
adaptive batching.

Routes (all answers JSON unless a page or photo):

* ``GET /`` the web page (``static/``), ``GET /static/...`` its script and style;
* ``POST /search`` multipart: ``image`` file, optional ``box`` or ``candidate`` (an index into
  the ``candidates`` boxes every answer lists), ``category`` (repeat the field for several),
  ``k`` and the filters ``price_min``, ``price_max``, ``seller`` (repeat for
  several), ``in_stock`` (:mod:`vsearch.search.filters`); an unknown field is a 422;
  concurrent searches share model calls (:mod:`vsearch.serving.microbatch`);
* ``GET /info`` versions and health (``POST /info`` is BentoML's API with the same answer);
  the admin token adds paths, lineage and load errors (:mod:`vsearch.serving.info`);
* ``GET /samples`` held-out demo query photos; ``GET /images/{path}`` photos of the drop;
  ``GET /uploads/{name}`` photos added through the admin API;
* ``POST /admin/items`` (multipart upsert), ``DELETE /admin/items/{item_id}``,
  ``POST /admin/reload``: bearer token from the environment variable ``serving.admin_token_env``,
  rate-limited per caller (:mod:`vsearch.serving.guard`);
* ``GET /docs.json`` the OpenAPI description of all of it (:mod:`vsearch.serving.openapi`);
* any other path: a JSON 404 (405 with ``Allow`` for a known path's other method).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles

from vsearch.errors import BadInput
from vsearch.search.filters import FILTER_FIELDS
from vsearch.serving import metrics
from vsearch.serving.admin_store import IMAGE_PREFIX
from vsearch.serving.guard import AdminGuard
from vsearch.serving.http import (
    HttpError,
    error_response,
    parse_box,
    parse_candidate,
    parse_categories,
    parse_filter,
    parse_float,
    parse_k,
    parse_text,
    status_of,
)
from vsearch.serving.info import admin_info, public_info
from vsearch.serving.microbatch import MicroBatcher
from vsearch.serving.state import NotLoaded, ReloadRefused, Served, ServingState

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DROP_IMAGES = "images/"  # drop image paths start here (contracts.IMAGES_DIR)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
PHOTO_CONTENT_TYPES = ("image/", "application/octet-stream")
SEARCH_FIELDS = ("image", "k", "box", "candidate", "category", *FILTER_FIELDS)
IMAGE_CACHE = "public, max-age=3600"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


# -- what the JSON says about photos ---------------------------------------------------------


def image_url(rel: str) -> str | None:
    """URL of a catalog/query photo path (relative to the drop, or an admin upload)."""
    if rel.startswith(IMAGE_PREFIX):
        return "/uploads/" + quote(rel[len(IMAGE_PREFIX) :])
    if rel.startswith(DROP_IMAGES):
        return "/images/" + quote(rel[len(DROP_IMAGES) :])
    drop, _, rest = rel.partition("/")  # a merged window's photo: <drop_id>/images/<path>
    if drop and rest.startswith(DROP_IMAGES):
        return "/images/" + quote(drop + "/" + rest[len(DROP_IMAGES) :])
    return None


def response_json(served: Served, response: Any) -> dict[str, Any]:
    """A pipeline response as the service's JSON: plus photo URLs and what served it."""
    body = response.to_dict()
    for hit in body["results"]:
        hit["image_url"] = image_url(hit.get("image") or "")
    body["release"] = served.release
    body["model"] = {
        "version": served.model.get("version"),
        "fingerprint": served.model.get("fingerprint"),
    }
    return body


def _optional_count(raw: Any, name: str) -> int | None:
    """A count field that may be absent (``None``: unknown), else an integer >= 0."""
    value = parse_float(raw, name, 0.0, float(2**53), float("nan"))
    if value != value:  # NaN: absent
        return None
    if value != int(value):
        raise HttpError(422, f"{name} must be a whole number, got {raw!r}")
    return int(value)


# -- the app ---------------------------------------------------------------------------------


class WebApp:
    """Route handlers over a :class:`ServingState` (``get_state`` finds it per request)."""

    def __init__(
        self,
        get_state: Callable[[], ServingState],
        base_spec: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """``base_spec`` gives BentoML's OpenAPI dict; ``/docs.json`` serves it completed
        (:func:`vsearch.serving.openapi.complete_spec`). ``None``: BentoML's view answers."""
        self.get_state = get_state
        self.base_spec = base_spec
        self._spec: dict[str, Any] | None = None
        self._admin_limiter: anyio.CapacityLimiter | None = None
        self._admin_guard: AdminGuard | None = None
        self._batcher: MicroBatcher[Any, Any] | None = None

    @property
    def state(self) -> ServingState:
        return self.get_state()

    def guard(self) -> AdminGuard:
        """The admin token check and rate limit of this process (made on first use: the
        settings come with the state)."""
        if self._admin_guard is None:
            self._admin_guard = AdminGuard(self.state.settings.serving)
        return self._admin_guard

    def info_for(self, headers: Mapping[str, str], client: str) -> dict[str, Any]:
        """``/info``: the public view, or the admin view for the valid admin token.

        Raises:
            HttpError: a token was sent but refused (401/403/429).
        """
        guard = self.guard()
        if guard.is_admin(headers, client):
            return admin_info(self.state, guard.enabled)
        return public_info(self.state, guard.enabled)

    def admin_limiter(self) -> anyio.CapacityLimiter:
        """Admin work runs one at a time on a thread of its own, so a reload never waits
        behind searches (nor blocks them); searches go through :meth:`batcher`."""
        if self._admin_limiter is None:
            self._admin_limiter = anyio.CapacityLimiter(1)
        return self._admin_limiter

    def batcher(self) -> MicroBatcher[Any, Any]:
        """Concurrent ``/search`` photos merged into one pipeline call
        (:mod:`vsearch.serving.microbatch`): up to ``serving.search_batch_max`` photos, in
        ``serving.search_threads`` calls at once."""
        if self._batcher is None:
            from vsearch.serving.batch import search_many

            s = self.state.settings.serving
            self._batcher = MicroBatcher(
                lambda queries: search_many(self.state, queries),
                s.search_batch_max,
                s.search_threads,
            )
        return self._batcher

    def routes(self) -> list[Any]:
        docs = [Route("/docs.json", self.openapi, methods=["GET"])] if self.base_spec else []
        return [
            *docs,
            Route("/", self.page, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
            Route("/search", self.search, methods=["POST"]),
            Route("/samples", self.samples, methods=["GET"]),
            Route("/info", self.info, methods=["GET"]),
            Route("/images/{path:path}", self.drop_image, methods=["GET"]),
            Route("/uploads/{name:path}", self.upload_image, methods=["GET"]),
            Route("/admin/items", self.admin_upsert, methods=["POST"]),
            Route("/admin/items/{item_id:path}", self.admin_delete, methods=["DELETE"]),
            Route("/admin/reload", self.admin_reload, methods=["POST"]),
            # Last: any other path is a JSON 404 (BentoML's own would be plain text). Only
            # BentoML's Swagger assets (/static_content) sit behind it; the page replaces them.
            Route("/{path:path}", self.not_found, methods=ALL_METHODS),
        ]

    def app(self) -> Starlette:
        async def http_error(request: Request, exc: Exception) -> Response:
            status, detail = getattr(exc, "status_code", 500), getattr(exc, "detail", exc)
            return error_response(status, f"{request.method} {request.url.path}: {detail}")

        return Starlette(routes=self.routes(), exception_handlers={HTTPException: http_error})

    async def not_found(self, request: Request) -> Response:
        """404 for a path no route knows; 405 (with ``Allow``) for a known path's other method."""
        allowed = sorted(
            {
                method
                for route in request.app.routes[:-1]
                if isinstance(route, Route) and route.matches(request.scope)[0] == Match.PARTIAL
                for method in route.methods or ()
            }
        )
        if allowed:
            return error_response(
                405,
                f"{request.method} {request.url.path}: method not allowed (use {allowed})",
                {"Allow": ", ".join(allowed)},
            )
        return error_response(404, f"no route {request.method} {request.url.path}")

    # -- helpers -----------------------------------------------------------------------------

    async def _guard(self, fn: Callable[[], Awaitable[Response]]) -> Response:
        """Run a handler, turning every refusal into a JSON error with its status."""
        try:
            return await fn()
        except HttpError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except NotLoaded as exc:
            return error_response(503, str(exc))
        except (HTTPException, MultiPartException) as exc:
            detail = getattr(exc, "detail", None) or getattr(exc, "message", str(exc))
            return error_response(400, f"malformed request body: {detail}")
        except Exception as exc:  # a bug: still JSON, with the server log holding the trace
            log.exception("unexpected error")
            return error_response(500, f"internal error ({type(exc).__name__}); see the log")

    @staticmethod
    async def _form(request: Request, what: str) -> Any:
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise HttpError(
                415, f"{what} takes multipart/form-data with an 'image' file (got {ctype!r})"
            )
        return await request.form(max_files=1)

    @staticmethod
    async def _photo(form: Any) -> bytes:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise HttpError(400, "missing the 'image' file field (multipart/form-data)")
        ctype = (upload.content_type or "").lower()
        if ctype and not ctype.startswith(PHOTO_CONTENT_TYPES):
            raise HttpError(415, f"image has content type {ctype!r}; send a photo (image/*)")
        return await upload.read()

    def _check_size(self, data: bytes) -> None:
        limit = self.state.settings.search.max_image_bytes
        if not data:
            raise HttpError(400, "image is empty (0 bytes)")
        if len(data) > limit:
            raise HttpError(413, f"image too large: {len(data)} bytes > {limit}")

    # -- pages and photos ----------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI description of every route (BentoML's, completed), built once."""
        from vsearch.serving.openapi import complete_spec

        if self._spec is None:
            assert self.base_spec is not None  # the route exists only with it
            self._spec = complete_spec(self.base_spec())
        return JSONResponse(self._spec)

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def drop_image(self, request: Request) -> Response:
        """A photo of the served release's drops, only from under their ``images/`` folders."""
        rel = request.path_params["path"]
        parts = Path(rel).parts
        if not rel or rel.startswith("/") or ".." in parts or "\x00" in rel:
            return error_response(400, f"bad image path {rel!r}")
        if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
            return error_response(400, f"bad image path {rel!r}")
        path = self.state.drop_image(rel)
        if path is None:
            return error_response(404, f"no image {rel!r}")
        return FileResponse(path, headers={"Cache-Control": IMAGE_CACHE})

    async def upload_image(self, request: Request) -> Response:
        try:
            path = self.state.admin.photo(request.path_params["name"])
        except BadInput as exc:
            return error_response(404, str(exc))
        return FileResponse(path, headers={"Cache-Control": IMAGE_CACHE})

    async def info(self, request: Request) -> Response:
        """``GET /info``: the same answer as BentoML's ``POST /info``."""

        async def run() -> Response:
            client = request.client.host if request.client else ""
            return JSONResponse(self.info_for(request.headers, client))

        return await self._guard(run)

    async def samples(self, request: Request) -> Response:
        """Held-out query photos of the drop (never trained on): the page's demo queries."""
        state = self.state
        n = state.settings.serving.samples

        def pick() -> list[dict[str, Any]]:
            from vsearch.contracts import ContractError
            from vsearch.split import heldout_queries

            try:
                held = heldout_queries(state.drop_dir(), state.settings.split, n)
            except (BadInput, ContractError):
                return []
            return [
                {"query_id": str(q), "image_url": image_url(str(img))}
                for q, img in zip(held["query_id"], held["image"], strict=True)
                if image_url(str(img))
            ]

        return JSONResponse({"samples": await anyio.to_thread.run_sync(pick)})

    # -- search --------------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        async def run() -> Response:
            form = await self._form(request, "POST /search")
            data = await self._photo(form)
            unknown = sorted(set(form.keys()) - set(SEARCH_FIELDS))
            if unknown:
                raise HttpError(
                    422, f"unknown field(s) {unknown}; POST /search takes {list(SEARCH_FIELDS)}"
                )
            state = self.state
            k = parse_k(form.get("k"), state.settings.search.default_k)
            box = parse_box(form.get("box"))
            candidate = parse_candidate(form.get("candidate"))
            chars = state.settings.serving.max_field_chars
            category = parse_categories(form.getlist("category"), chars)
            filters = parse_filter(
                form.get("price_min"),
                form.get("price_max"),
                form.getlist("seller"),
                form.get("in_stock"),
                chars,
            )
            self._check_size(data)
            from vsearch.serving.batch import PhotoQuery

            answer = await self.batcher().submit(
                PhotoQuery(data, k, box, category, filters, candidate)
            )
            if isinstance(answer, HttpError):
                raise answer
            return JSONResponse(answer)

        return await self._guard(run)

    # -- admin ---------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        """The admin token and rate limit (:class:`~vsearch.serving.guard.AdminGuard`): 429
        over the limit, 403 when admin is disabled or the token is wrong, 401 without one."""
        self.guard().check(request.headers, request.client.host if request.client else "")

    async def admin_upsert(self, request: Request) -> Response:
        async def run() -> Response:
            self._authorize(request)
            state = self.state
            chars = state.settings.serving.max_field_chars
            form = await self._form(request, "POST /admin/items")
            data = await self._photo(form)
            row = {
                "item_id": parse_text(form.get("item_id"), "item_id", chars),
                "category": parse_text(form.get("category"), "category", chars),
                "seller_id": parse_text(form.get("seller_id"), "seller_id", chars),
                "title": parse_text(form.get("title"), "title", chars),
                "price": parse_float(form.get("price"), "price", 0.0, float("inf")),
                "quality": parse_float(form.get("quality"), "quality", 0.0, 1.0, float("nan")),
                "sales": int(parse_float(form.get("sales"), "sales", 0.0, float(2**53), 0.0)),
                "stock": _optional_count(form.get("stock"), "stock"),
            }
            if row["price"] <= 0:
                raise HttpError(422, f"price must be > 0, got {row['price']}")
            box = parse_box(form.get("box"))
            self._check_size(data)
            admin_limiter = self.admin_limiter()
            body = await anyio.to_thread.run_sync(
                lambda: self._upsert_sync(row, data, box), limiter=admin_limiter
            )
            return JSONResponse(body)

        return await self._guard(run)

    def _upsert_sync(
        self, row: dict[str, Any], data: bytes, box: list[float] | None
    ) -> dict[str, Any]:
        from vsearch.search.images import check_box

        try:
            box_arr = check_box(box)
        except BadInput as exc:
            raise HttpError(422, str(exc)) from None
        state = self.state
        with state.lease() as served:  # the category must be one the served release knows
            try:
                served.pipeline.check_category(row["category"])
            except BadInput as exc:
                raise HttpError(422, str(exc)) from None
        try:
            out = state.upsert(row, data, box_arr)
        except NotLoaded:
            raise
        except BadInput as exc:
            raise HttpError(status_of(exc), str(exc)) from None
        out["image_url"] = image_url(out["image"])
        return out

    async def admin_delete(self, request: Request) -> Response:
        async def run() -> Response:
            self._authorize(request)
            item_id = request.path_params["item_id"]
            parse_text(item_id, "item_id", self.state.settings.serving.max_field_chars)
            admin_limiter = self.admin_limiter()
            n = await anyio.to_thread.run_sync(
                lambda: self.state.delete(item_id), limiter=admin_limiter
            )
            if n == 0:
                raise HttpError(404, f"no live item {item_id!r} in the served release")
            return JSONResponse({"item_id": item_id, "deleted": n})

        return await self._guard(run)

    async def admin_reload(self, request: Request) -> Response:
        async def run() -> Response:
            self._authorize(request)
            state = self.state
            before = state.current.describe() if state.current else None
            admin_limiter = self.admin_limiter()
            try:
                served = await anyio.to_thread.run_sync(state.reload, limiter=admin_limiter)
            except ReloadRefused as exc:
                metrics.record_reload(metrics.RELOAD_REFUSED)
                now = state.current.release if state.current else None
                return error_response(409, f"reload refused: {exc}", serving=now)
            metrics.record_reload(metrics.RELOAD_OK)
            metrics.record_served(served.pipeline.engine.manifest.created_at, served.loaded_at)
            return JSONResponse({"serving": served.describe(), "previous": before})

        return await self._guard(run)
