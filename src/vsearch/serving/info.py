"""What ``/info`` answers: a public view (versions and health) and an admin view (everything).

Why two views: the service's answers reach anyone who can reach its port, and the full picture
of what serves (drop folders and model folders as absolute paths, the registry's URI and its
errors, why the last load failed) tells an attacker where things live and which software
failed how. The web page needs only the public view (what release and model serve, the
categories, the limits); operators send the admin token (:mod:`vsearch.serving.guard`) and
get the rest.
"""

from __future__ import annotations

from typing import Any

from vsearch import __version__
from vsearch.index.release import current_version
from vsearch.serving.state import ServingState

PUBLIC_MODEL_KEYS = ("name", "version", "alias", "fingerprint")  # never a path or a URI


def _limits(state: ServingState) -> dict[str, int]:
    s = state.settings
    return {
        "max_k": s.search.max_k,
        "default_k": s.search.default_k,
        "max_image_bytes": s.search.max_image_bytes,
        "max_request_bytes": s.serving.max_request_bytes,
        "max_batch_items": s.serving.max_batch_items,
    }


def public_info(state: ServingState, admin_enabled: bool) -> dict[str, Any]:
    """Versions and health: what serves (release, model version, items, categories), the
    release ``CURRENT`` names, the limits; no path, URI or error text from inside."""
    current = state.current
    serving = None
    if current is not None:
        full = current.describe()
        serving = {
            "release": full["release"],
            "model": {k: full["model"].get(k) for k in PUBLIC_MODEL_KEYS if k in full["model"]},
            "items": full["items"],
            "categories": full["categories"],
            "loaded_at": full["loaded_at"],
        }
    return {
        "version": __version__,
        "index_release": current_version(state.indexes_dir),
        "ready": current is not None,
        "serving": serving,
        "error": None if current else state.not_loaded_message(),
        "admin_enabled": admin_enabled,
        "limits": _limits(state),
        "detail": "public view; send the admin token for paths, lineage and errors",
    }


def admin_info(state: ServingState, admin_enabled: bool) -> dict[str, Any]:
    """Everything: ingested drops (folders, DVC hashes), the served release's full description
    (model folder or registry URI, lineage, admin changes) and why nothing is loaded."""
    from vsearch.data.ingest import list_drops

    raw = state.abs(state.settings.ingest.raw_dir)
    current = state.current
    return {
        **public_info(state, admin_enabled),
        "drops": list_drops(raw) if raw.is_dir() else [],
        "serving": current.describe() if current else None,
        "error": None if current else state.not_loaded_detail(),
        "project_root": str(state.root),
        "detail": "admin view",
    }
