"""The OpenAPI description stays true to the web app: every route has its path item, BentoML's
spec is completed (our refusals documented, no 500, one key type) and nothing is lost."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route

from vsearch.serving.openapi import complete_spec, web_paths
from vsearch.serving.web import WebApp

pytestmark = pytest.mark.unit


def _openapi_path(route: Route) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)


def test_every_web_route_is_documented_with_its_methods() -> None:
    app = WebApp(lambda: None, base_spec=dict)  # type: ignore[arg-type,return-value]
    documented = web_paths()
    routes = [r for r in app.routes() if isinstance(r, Route)]
    for route in routes:
        path = _openapi_path(route)
        if path in {"/docs.json", "/{path}"}:  # the spec itself and the JSON 404 catch-all
            continue
        assert path in documented, path
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        assert methods == set(documented[path]), path
    assert "/static/{path}" in documented  # the static mount


def test_complete_spec_documents_refusals_and_drops_500() -> None:
    bento = {
        "paths": {
            "/info": {"post": {"responses": {200: {"description": "ok"}, 400: {}, 500: {}}}},
            "/search_batch": {"post": {"responses": {200: {}, 400: {}, 404: {}, 500: {}}}},
            "/readyz": {"get": {"responses": {200: {"description": "ok"}}}},
            "/metrics": {"get": {"responses": {200: {"description": "ok"}}}},
        },
        "components": {
            "schemas": {
                "InvalidArgument": {"properties": {"error": {}, "detail": {"type": "string"}}}
            }
        },
    }
    spec = complete_spec(bento)
    info = spec["paths"]["/info"]["post"]["responses"]
    # a presented token is checked like an admin call: 401/403/429 besides the body refusals
    assert set(info) == {"200", "400", "401", "403", "413", "415", "429"}
    assert set(spec["paths"]["/info"]) == {"get", "post"}  # GET: the web route, same answer
    batch = spec["paths"]["/search_batch"]["post"]["responses"]
    assert set(batch) == {"200", "400", "413", "415", "503"}
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert spec["components"]["schemas"]["InvalidArgument"]["properties"]["detail"] == {}
    assert spec["components"]["securitySchemes"]["adminBearer"]["scheme"] == "bearer"
    assert set(web_paths()) <= set(spec["paths"])
    assert bento["paths"]["/info"]["post"]["responses"][500] == {}  # the input is not changed
