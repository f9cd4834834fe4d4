"""Prometheus metrics of the service beyond BentoML's request counts: what serves, since when.

Why: BentoML's ``/metrics`` counts requests by route and status and times them; an operator
also needs the freshness of the index (when the served release was built, when it was loaded)
and to see refused reloads, to alert on a stale or stuck service (docs/operations.md#what-to-
alert-on). The metrics are created on first use, in the worker: ``prometheus_client`` must be
imported after BentoML has set its multiprocess folder, or they would not reach ``/metrics``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

RELOAD_OK = "ok"
RELOAD_REFUSED = "refused"


@functools.cache
def _metrics() -> dict[str, Any]:
    import prometheus_client as pc

    return {
        "created": pc.Gauge(
            "vsearch_release_created_timestamp_seconds",
            "when the served index release was built (unix time): its age is the freshness",
            multiprocess_mode="livemax",
        ),
        "loaded": pc.Gauge(
            "vsearch_release_loaded_timestamp_seconds",
            "when this service loaded the release it serves (unix time)",
            multiprocess_mode="livemax",
        ),
        "reloads": pc.Counter(
            "vsearch_reloads", "POST /admin/reload answers by result (ok, refused)", ["result"]
        ),
    }


def _unix(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def record_served(created_at: str | None, loaded_at: str | None) -> None:
    """The release now serving: its build and load times."""
    m = _metrics()
    for key, value in (("created", _unix(created_at)), ("loaded", _unix(loaded_at))):
        if value is not None:
            m[key].set(value)


def record_reload(result: str) -> None:
    """One answered reload (``ok`` or ``refused``)."""
    _metrics()["reloads"].labels(result=result).inc()
