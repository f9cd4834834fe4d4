"""Keep Python's cyclic garbage collector from stalling searches.

Why: a serving worker holds ~570k objects the collector tracks once a pipeline is loaded
(torch, BentoML, pandas, the catalog's rows). A full (generation 2) collection walks all of them
with the GIL held: 253 ms measured in the worker. Under load it came within the first minute and
every search in flight waited for it (32 clients: p95 463 ms against 180 ms without it).

:func:`settle` moves what is alive after a load into the permanent generation that collections
skip (``gc.freeze``); the garbage of each request is still collected as before. Objects are
still freed by reference counting when frozen; only garbage *cycles* among frozen objects would
stay, so each load first thaws and collects once (the previous pipeline's cycles go then), which
is one full collection per load, not one per minute of traffic.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def settle() -> None:
    """Thaw, collect everything once, freeze what is left (call after a pipeline load)."""
    t0 = time.perf_counter()
    gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    log.info(
        "heap frozen after load: %d objects skipped by collections from now on (%d freed, %.0f ms)",
        gc.get_freeze_count(),
        freed,
        (time.perf_counter() - t0) * 1e3,
    )
