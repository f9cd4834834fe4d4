"""The service's OpenAPI description: BentoML's spec, completed with what BentoML cannot see.

Why: BentoML documents only its own ``@bentoml.api`` endpoints (and mounted *FastAPI* apps),
each with a generic 400/404/500 and an error ``detail`` typed as a string although it sends a
list. The web app's routes (:mod:`vsearch.serving.web`: ``/search``, the photos, the admin API)
and the refusals our middlewares answer (:mod:`vsearch.serving.http`: 413, 415, 503) were
missing, so a client generator or a fuzzer (``bench/fuzz.py``, schemathesis) saw a smaller and
wrong API. :func:`complete_spec` adds them; the web app serves the result at ``/docs.json``
ahead of BentoML's own view (mounted apps are matched before it).

The response schemas say what the handlers really send (required keys and their types; extra
keys are allowed so a new field is not a breaking change).
"""

from __future__ import annotations

import copy
from typing import Any

from vsearch.search.filters import FILTER_FIELDS

REASONS = {
    400: "Bad request: a malformed body or field, or a photo that cannot be decoded",
    401: "No bearer token (admin API)",
    403: "Wrong bearer token, or the admin API is disabled (no token configured)",
    404: "Not found",
    409: "Refused: the reload failed; the previous pipeline keeps serving",
    413: "Request body or photo too large",
    415: "Wrong content type",
    422: "A field is out of range or unknown (the error names it)",
    429: "Too many calls presenting a token (admin rate limit); see Retry-After",
    503: "No index release is loaded yet (the error says why)",
}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
    "additionalProperties": True,
}
OBJECT = {"type": "object"}
NUMBER_OR_NULL = {"type": "number", "nullable": True}
STRING_LIST = {"type": "array", "items": {"type": "string"}}
BOX = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}
HIT: dict[str, Any] = {
    "type": "object",
    "required": ["item_id", "score", "similarity", "hamming", "category", "seller_id", "title"],
    "properties": {
        "item_id": {"type": "string"},
        "score": {"type": "number"},
        "similarity": {"type": "number"},
        "hamming": {"type": "integer"},
        "category": {"type": "string"},
        "seller_id": {"type": "string"},
        "title": {"type": "string"},
        "price": NUMBER_OR_NULL,  # null: a live listing without a catalog row
        "image": {"type": "string"},
        "image_url": {"type": "string", "nullable": True},
        "quality": NUMBER_OR_NULL,
        "sales": {"type": "integer"},
        "more_sellers": STRING_LIST,
    },
}
CANDIDATE: dict[str, Any] = {
    "type": "object",
    "required": ["box", "score"],
    "properties": {
        "box": BOX,
        "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "objectness"},
    },
}
SEARCH_RESULT: dict[str, Any] = {
    "type": "object",
    "required": [
        "category",
        "confidence",
        "results",
        "box",
        "candidates",
        "candidate",
        "timings_ms",
        "release",
        "model",
    ],
    "properties": {
        "category": {"type": "string"},
        "confidence": NUMBER_OR_NULL,
        "category_probs": {"type": "object", "additionalProperties": {"type": "number"}},
        "model_category": {"type": "string"},
        "vote_category": {"type": "string"},
        "searched_categories": STRING_LIST,
        "box": BOX,
        "box_score": NUMBER_OR_NULL,
        "candidates": {
            "type": "array",
            "items": CANDIDATE,
            "description": "objects found in the photo, most confident first",
        },
        "candidate": {
            "type": "integer",
            "minimum": 0,
            "nullable": True,
            "description": "the candidate searched (null: the caller's box)",
        },
        "second_box": {
            **BOX,
            "nullable": True,
            "description": "the box the detector found looking again inside `box` (grown), "
            "searched beside it: each result scores its better similarity (null: "
            "search.second_look is off)",
        },
        "results": {"type": "array", "items": HIT},
        "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "description": "photos searched in the same model call (concurrent /search requests "
            "are merged under load; a /search_batch request's photos)",
        },
        "category_forced": {"type": "boolean"},
        "filters": {"type": "object"},
        "release": {"type": "string"},
        "model": {"type": "object"},
    },
}
BATCH_SLOT: dict[str, Any] = {
    "anyOf": [
        SEARCH_RESULT,
        {
            "type": "object",
            "required": ["error", "status"],
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
        },
    ]
}
INFO: dict[str, Any] = {
    "type": "object",
    "required": ["version", "ready"],
    "properties": {
        "version": {"type": "string"},
        "ready": {"type": "boolean"},
        "drops": {"type": "array", "items": {"type": "object"}},
        "index_release": {"type": "string", "nullable": True},
        "serving": {"type": "object", "nullable": True},
        "error": {"type": "string", "nullable": True},
        "admin_enabled": {"type": "boolean"},
        "limits": {"type": "object"},
        "detail": {"type": "string"},
        "project_root": {"type": "string"},
    },
}
INFO_SUMMARY = "versions and health; with the admin token also paths, lineage and errors"
UPSERTED: dict[str, Any] = {
    "type": "object",
    "required": ["item_id", "category", "box", "image", "release", "seq"],
    "properties": {
        "item_id": {"type": "string"},
        "category": {"type": "string"},
        "box": BOX,
        "image": {"type": "string"},
        "image_url": {"type": "string", "nullable": True},
        "release": {"type": "string"},
        "seq": {"type": "integer"},
    },
}
RELOADED: dict[str, Any] = {
    "type": "object",
    "required": ["serving"],
    "properties": {
        "serving": {"type": "object"},
        "previous": {"type": "object", "nullable": True},
    },
}
TEXT = {"type": "string", "maxLength": 256}  # serving.max_field_chars is the real bound
SEARCH_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "the photo"},
        "k": {"type": "integer", "minimum": 1, "description": "results (1..search.max_k)"},
        "box": {"type": "string", "description": "normalised x0,y0,x1,y1 (or a JSON list)"},
        "candidate": {
            "type": "integer",
            "minimum": 0,
            "description": "search this entry of an answer's candidates (not with box)",
        },
        "category": {"type": "array", "items": TEXT, "description": "repeat for several"},
        "price_min": {"type": "number", "minimum": 0},
        "price_max": {"type": "number", "minimum": 0},
        "seller": {"type": "array", "items": TEXT, "description": "repeat for several"},
        "in_stock": {"type": "boolean"},
    },
}
UPSERT_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["image", "item_id", "category", "seller_id", "title", "price"],
    "properties": {
        "image": {"type": "string", "format": "binary"},
        "item_id": TEXT,
        "category": TEXT,
        "seller_id": TEXT,
        "title": TEXT,
        "price": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        "quality": {"type": "number", "minimum": 0, "maximum": 1},
        "sales": {"type": "integer", "minimum": 0},
        "stock": {"type": "integer", "minimum": 0},
        "box": {"type": "string", "description": "normalised x0,y0,x1,y1"},
    },
}
BEARER = [{"adminBearer": []}]
ANY_IMAGE = {"image/*": {"schema": {"type": "string", "format": "binary"}}}
TAG = "vsearch"


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(REASONS[code], ERROR) for code in codes}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


def _op(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": [TAG], "responses": responses, **more}


def web_paths() -> dict[str, Any]:
    """Path items of the web app's routes (:meth:`vsearch.serving.web.WebApp.routes`)."""
    form = {"required": True, "content": {"multipart/form-data": {"schema": SEARCH_FORM}}}
    upsert = {"required": True, "content": {"multipart/form-data": {"schema": UPSERT_FORM}}}
    admin_denied = _errors(401, 403, 429)
    return {
        "/": {
            "get": _op(
                "The web page",
                {"200": {"description": "HTML", "content": {"text/html": {"schema": {}}}}},
            )
        },
        "/static/{path}": {
            "get": _op(
                "The page's script and style",
                {
                    "200": {"description": "a static file", "content": {"*/*": {"schema": {}}}},
                    **_errors(400, 404),
                },
                parameters=[_path_param("path", "file under static/")],
            )
        },
        "/info": {  # GET answers what BentoML's POST /info does (complete_spec adds that)
            "get": _op(INFO_SUMMARY, {"200": _json(INFO_SUMMARY, INFO), **admin_denied})
        },
        "/search": {
            "post": _op(
                "Search one photo (multipart form; filters: " + ", ".join(FILTER_FIELDS) + ")",
                {
                    "200": _json("ranked listings", SEARCH_RESULT),
                    **_errors(400, 413, 415, 422, 503),
                },
                requestBody=form,
            )
        },
        "/samples": {
            "get": _op(
                "Held-out query photos for the page",
                {
                    "200": _json(
                        "samples",
                        {
                            "type": "object",
                            "required": ["samples"],
                            "properties": {"samples": {"type": "array", "items": OBJECT}},
                        },
                    )
                },
            )
        },
        "/images/{path}": {
            "get": _op(
                "A photo of the served release's drops",
                {"200": {"description": "the photo", "content": ANY_IMAGE}, **_errors(400, 404)},
                parameters=[_path_param("path", "path under the drop's images/ folder")],
            )
        },
        "/uploads/{name}": {
            "get": _op(
                "A photo added through the admin API",
                {"200": {"description": "the photo", "content": ANY_IMAGE}, **_errors(400, 404)},
                parameters=[_path_param("name", "stored photo name")],
            )
        },
        "/admin/items": {
            "post": _op(
                "Upsert a listing (durable, searchable at once)",
                {
                    "200": _json("the stored listing", UPSERTED),
                    **_errors(400, 413, 415, 422, 503),
                    **admin_denied,
                },
                requestBody=upsert,
                security=BEARER,
            )
        },
        "/admin/items/{item_id}": {
            "delete": _op(
                "Delete a live listing (durable)",
                {
                    "200": _json(
                        "deleted",
                        {
                            "type": "object",
                            "required": ["item_id", "deleted"],
                            "properties": {
                                "item_id": {"type": "string"},
                                "deleted": {"type": "integer"},
                            },
                        },
                    ),
                    **_errors(400, 404, 413, 422, 503),
                    **admin_denied,
                },
                parameters=[_path_param("item_id", "the listing's id")],
                security=BEARER,
            )
        },
        "/admin/reload": {
            "post": _op(
                "Load CURRENT (and the model) beside the serving pipeline, then swap",
                {"200": _json("what serves now", RELOADED), **_errors(409, 413), **admin_denied},
                security=BEARER,
            )
        },
    }


def complete_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's OpenAPI dict (``Service.openapi_spec.asdict()``) made true to the service.

    Adds :func:`web_paths`; gives BentoML's APIs (``/info``, ``/search_batch``) the answers
    our middlewares and handlers send (413, 415, 503, per-photo errors) and an error schema
    that accepts BentoML's list-valued ``detail``; documents ``/readyz``'s 503 and
    ``/metrics``' text.
    """
    out = copy.deepcopy(spec)
    paths = out.setdefault("paths", {})
    for schemas in out.get("components", {}).get("schemas", {}).values():
        if "detail" in schemas.get("properties", {}):  # InvalidArgument, NotFound, ...
            schemas["properties"]["detail"] = {}
    for route in ("/info", "/search_batch"):
        post = paths.get(route, {}).get("post")
        if post is None:
            continue
        # BentoML's keys are ints: one key type, or JSON would carry "400" twice
        responses = post["responses"] = {str(k): v for k, v in post["responses"].items()}
        responses.pop("404", None)  # a route that exists; unknown paths are not operations
        responses.pop("500", None)  # never by design: a 500 is a bug the fuzzer must report
        responses.update(_errors(413, 415))
        if route == "/search_batch":
            batch = {"type": "array", "items": BATCH_SLOT}
            responses["200"] = _json("one answer per photo, in order", batch)
            responses.update(_errors(503))
        else:  # public view; a presented token is checked (and counted) like an admin call
            responses["200"] = _json(INFO_SUMMARY, INFO)
            responses.update(_errors(401, 403, 429))
    for item in paths.values():
        for op in item.values():
            op["responses"] = {str(k): v for k, v in op.get("responses", {}).items()}
    if "/readyz" in paths:
        paths["/readyz"]["get"]["responses"].update(_errors(503))
    if "/metrics" in paths:
        ok = paths["/metrics"]["get"]["responses"]["200"]
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    info_post = paths.get("/info", {}).get("post")
    paths.update(web_paths())
    if info_post is not None:  # GET /info is a web route beside BentoML's POST /info
        paths["/info"]["post"] = info_post
    components = out.setdefault("components", {})
    components.setdefault("securitySchemes", {})["adminBearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "the token in the environment variable serving.admin_token_env",
    }
    out.setdefault("tags", []).append({"name": TAG, "description": "search, photos, admin"})
    return out
