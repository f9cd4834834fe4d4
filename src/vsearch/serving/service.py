"""BentoML service ``vsearch``: visual search over HTTP, with a web page and an admin API.

Endpoints:

* ``POST /search`` (multipart photo) and ``GET /``, ``/samples``, ``/images/...``,
  ``/uploads/...``, ``/admin/...``: a Starlette app mounted into the service
  (:mod:`vsearch.serving.web`; why not ``@bentoml.api`` is explained there);
* ``POST /search_batch``: adaptive batching (:mod:`vsearch.serving.batch`);
* ``POST /info`` (and ``GET /info``): versions and health; with the admin token also drops,
  paths, lineage and load errors (:mod:`vsearch.serving.info`);
* BentoML's own ``/livez``, ``/readyz`` (ready only once a pipeline is loaded), ``/metrics``,
  ``/docs.json``.

The service loads the model and the current index release in ``__init__`` (or starts without
one and says why: ``/search`` answers 503 until ``POST /admin/reload`` finds a release) and
swaps both atomically on reload (:mod:`vsearch.serving.state`).

Why settings come from ``VSEARCH_PARAMS``: BentoML imports this module in its own worker
processes, so the params file cannot be passed as an argument; ``vsearch serve`` sets it. The
few settings BentoML needs when it builds the app (timeout, batching, body limits) are read once
per process by :func:`boot_settings`, before the service object exists.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import bentoml
from pydantic import Field

from vsearch import __version__
from vsearch.local.env import PARAMS_ENV, ROOT_ENV
from vsearch.serving.batch import BatchQuery, run_batch
from vsearch.serving.http import BodyLimit, CleanPath, HttpError, JsonApiGate, SecurityHeaders
from vsearch.serving.metrics import record_served
from vsearch.serving.state import ServingState
from vsearch.serving.threads import set_serving_threads
from vsearch.serving.web import WebApp
from vsearch.settings import Settings, load_settings

log = logging.getLogger(__name__)
BATCH_ROUTE = "/search_batch"
INFO_ROUTE = "/info"


def project_root() -> Path:
    return Path(os.environ.get(ROOT_ENV, ".")).resolve()


@functools.cache
def boot_settings() -> Settings:
    """The settings of this process (``VSEARCH_PARAMS`` under ``VSEARCH_ROOT``), read once.

    Outside ``vsearch serve`` (``bentoml build`` imports this module to describe the service)
    a missing params file gives the defaults; the service itself still refuses to start
    without one.
    """
    path = project_root() / os.environ.get(PARAMS_ENV, "params.yaml")
    if not path.is_file() and PARAMS_ENV not in os.environ:
        return Settings()
    return load_settings(path)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_supervisor() -> None:
    """Ask Linux to SIGTERM this worker when the ``bentoml serve`` process that started it dies.

    Why: BentoML starts each worker in its own session, so a supervisor killed with SIGKILL
    (the OOM killer, ``kill -9``) left its worker running, still serving on the inherited
    socket: the port stayed taken and a restart failed. With the death signal the worker
    drains and exits like on a normal stop. A no-op elsewhere than Linux.
    """
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d)", ctypes.get_errno())
    elif parent == 1 or os.getppid() != parent:  # it died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def _state() -> ServingState:
    return bentoml.get_current_service().state


def _body_limit(path: str) -> int:
    s = boot_settings().serving
    return s.max_batch_request_bytes if path.rstrip("/") == BATCH_ROUTE else s.max_request_bytes


_BOOT = boot_settings().serving
_web = WebApp(_state, lambda: VSearchService.openapi_spec.asdict())
EVERY_URL = ".*"  # a pattern of OpenTelemetry's URL exclude list that every request matches
# Without serving.trace_requests BentoML's OpenTelemetry middleware is bypassed for every path.
_TRACING = {} if _BOOT.trace_requests else {"tracing": {"excluded_urls": EVERY_URL}}


@bentoml.asgi_app(_web.app(), path="/", name="vsearch-web")
@bentoml.service(name="vsearch", traffic={"timeout": _BOOT.request_timeout_s}, **_TRACING)
class VSearchService:
    """Holds the :class:`ServingState`; BentoML endpoints delegate to it."""

    def __init__(self) -> None:
        logging.getLogger("vsearch").setLevel(logging.INFO)  # BentoML sets up only its own
        die_with_supervisor()
        self.root = project_root()
        self.settings = load_settings(self.root / os.environ.get(PARAMS_ENV, "params.yaml"))
        set_serving_threads(self.settings.serving)
        self.state = ServingState(self.settings, self.root)
        log.info("vsearch service %s, project root %s", __version__, self.root)
        self.state.try_initial_load()
        if self.state.current is not None:
            served = self.state.current
            record_served(served.pipeline.engine.manifest.created_at, served.loaded_at)

    def __is_ready__(self) -> bool:
        """``/readyz``: ready only while a pipeline is loaded."""
        return self.state.current is not None

    @bentoml.api(route=INFO_ROUTE)
    def info(self, ctx: bentoml.Context) -> dict[str, Any]:
        """Versions and health (the public view); with the admin bearer token also drops,
        paths, lineage and load errors (:mod:`vsearch.serving.info`). ``GET /info`` answers
        the same."""
        request = ctx.request
        client = request.client.host if request.client else ""
        try:
            return _web.info_for(request.headers, client)
        except HttpError as exc:
            ctx.response.status_code = exc.status
            for name, value in exc.headers.items():
                ctx.response.headers[name] = value
            return {"error": exc.message}

    @bentoml.api(
        route=BATCH_ROUTE,
        batchable=True,
        max_batch_size=_BOOT.batch_max_size,
        max_latency_ms=_BOOT.batch_max_latency_ms,
    )
    def search_batch(
        self,
        queries: Annotated[list[BatchQuery], Field(min_length=1, max_length=_BOOT.max_batch_items)],
    ) -> list[dict[str, Any]]:
        """Search many photos (JSON ``{"queries": [{"image": base64, ...}]}``); answers one
        result object per photo, in order (``{"error", "status"}`` for a refused photo)."""
        return run_batch(self.state, queries)

    @bentoml.on_shutdown
    def _close(self) -> None:
        self.state.close()


def _ready() -> bool:
    return _state().current is not None


def _not_ready_message() -> str:
    return _state().not_loaded_message()


# Outermost first: the security headers also go on the refusals of the two guards below.
VSearchService.add_asgi_middleware(SecurityHeaders)
VSearchService.add_asgi_middleware(BodyLimit, limit_for=_body_limit)
VSearchService.add_asgi_middleware(CleanPath)
VSearchService.add_asgi_middleware(
    JsonApiGate,
    json_paths=frozenset({BATCH_ROUTE, INFO_ROUTE}),
    ready_paths=frozenset({BATCH_ROUTE}),
    ready=_ready,
    message=_not_ready_message,
)
