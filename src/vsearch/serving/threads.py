"""Thread pools in the service: ``serving.torch_threads`` (torch, and numpy's BLAS) and
``torch_interop_threads``.

Why the service has its own thread settings and not ``project.threads`` (training's): it runs
``serving.search_threads`` search calls at once, each with its own intra-op pool; two calls x
two threads on two cores oversubscribe them, and an OpenMP team with a descheduled thread
stalls at every barrier. ``search_threads x torch_threads`` = the cores a worker may use is the
rule (docs/operations.md#serving-on-n-cores).
"""

from __future__ import annotations

import logging

import torch

from vsearch.settings import ServingSettings

log = logging.getLogger(__name__)


def set_serving_threads(serving: ServingSettings) -> None:
    """Size torch's pools and numpy's BLAS for serving; called first thing in the worker (and
    by the bench's in-process baseline), because the inter-op pool can only be sized before its
    first use."""
    torch.set_num_threads(serving.torch_threads)
    # numpy's BLAS too (the index search's centroid products): same rule, or every search call
    # would start a team on every core.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=serving.torch_threads, user_api="blas")
    if serving.torch_interop_threads:
        try:
            torch.set_num_interop_threads(serving.torch_interop_threads)
        except RuntimeError as exc:  # already started (a second service in one process)
            log.warning("torch inter-op threads stay %d: %s", torch.get_num_interop_threads(), exc)
