"""Ratchets for the tenant API: every route needs a key unless it is on the public list; the schema and docs."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from api.api import api
from tests.api.conftest import Api

committed = pytest.mark.usefixtures("committed")

# Routes under /api/ anyone may read, reviewed one by one: the schema, its browsable page, and
# ninja's root, which serves nothing (always 404).
PUBLIC_ROUTES = {"api/v1/openapi.json", "api/v1/docs", "api/v1/"}


def _api_routes() -> set[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                yield route

    return {route for route in walk(get_resolver().url_patterns) if route.startswith("api/")}


def _operations():
    for _prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                yield path, operation


def test_every_api_operation_declares_a_key_scope():
    operations = list(_operations())
    assert len(operations) == 6
    for path, operation in operations:
        assert operation.auth_callbacks, f"{path} has no authentication"
        assert all(getattr(auth, "scope", None) for auth in operation.auth_callbacks), path


@committed
def test_every_route_under_api_answers_401_without_a_key_unless_public(world):
    routes = _api_routes()
    assert routes >= PUBLIC_ROUTES
    anonymous = Api()
    for route in sorted(routes - PUBLIC_ROUTES):
        path = "/" + re.sub(r"<[^>]+>", "onboarding", route).removeprefix("api/v1/")
        for method in ("GET", "POST"):
            answer = anonymous.call(method, path, raw=b"{}" if method == "POST" else None)
            assert answer.status in (401, 405), f"{method} {path} answered {answer.status} without a key"
            if answer.status == 401:
                assert answer.json["code"] == "unauthorized"


@committed
def test_the_api_root_serves_nothing():
    answer = Api().get("/")
    assert (answer.status, answer.json["code"]) == (404, "not_found")


@committed
def test_the_openapi_document_has_the_bearer_scheme_and_problem_responses():
    answer = Api().get("/openapi.json")
    assert answer.status == 200
    schema = answer.json
    schemes = schema["components"]["securitySchemes"]
    assert {scheme["scheme"] for scheme in schemes.values()} == {"bearer"}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            assert operation.get("security"), f"{method} {path} has no security"
            assert {"401", "403", "429"} <= set(operation["responses"]), f"{method} {path}"
    assert "Problem" in schema["components"]["schemas"]


@committed
def test_the_docs_page_loads_its_assets_locally():
    answer = Api().get("/docs")
    assert answer.status == 200
    page = answer.body.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in page
    assert not re.search(r"""(src|href)=["']https?://""", page), "no asset from another host"
