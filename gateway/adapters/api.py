"""The whole HTTP API: every route module's table, the router and ``/openapi.json``."""

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from gateway.access import ApiRole
from gateway.adapters.http_api import INTAKE_ROUTES
from gateway.adapters.http_cases import CASE_ROUTES
from gateway.adapters.http_delivery import DELIVERY_ROUTES
from gateway.adapters.http_subscriptions import SUBSCRIPTION_ROUTES
from gateway.adapters.openapi import openapi_document
from gateway.adapters.ops_console import OPS_ROUTES
from gateway.adapters.routes import Answer, Route

OPENAPI = web.AppKey("openapi", dict[str, Any])


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


ROUTES: Sequence[Route] = (
    *INTAKE_ROUTES,
    *CASE_ROUTES,
    *DELIVERY_ROUTES,
    *SUBSCRIPTION_ROUTES,
    *OPS_ROUTES,
    Route(
        "GET",
        "/openapi.json",
        get_openapi,
        "getOpenApi",
        "This document.",
        answers={200: Answer("OpenAPI 3.1 document.")},
        public=True,
    ),
)

_ROLES_BY_OPERATION = {route.operation_id: route.roles for route in ROUTES}


def roles_of_route(operation_id: str | None) -> frozenset[ApiRole]:
    return _ROLES_BY_OPERATION.get(operation_id or "", frozenset())


PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PROBE_ROUTES: Sequence[Route] = tuple(route for route in ROUTES if route.path in PROBE_PATHS)


def add_routes(app: web.Application, routes: Sequence[Route] = ROUTES) -> None:
    """Serve ``routes`` (a worker process serves only ``PROBE_ROUTES``)."""
    app[OPENAPI] = openapi_document(routes)
    for route in routes:
        if route.method == "GET":  # and HEAD, which HTTP asks of every server (RFC 9110 9.1)
            app.router.add_get(route.path, route.handler, name=route.operation_id)
        else:
            app.router.add_route(route.method, route.path, route.handler, name=route.operation_id)
