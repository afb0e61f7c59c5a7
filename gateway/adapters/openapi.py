"""OpenAPI 3.1 document generated from the route table and the pydantic contracts."""

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from contracts.problem import Problem
from gateway import __version__

if TYPE_CHECKING:
    from gateway.adapters.routes import Route

REF_TEMPLATE = "#/components/schemas/{model}"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "inboundWebhook": {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": (
            "Standard Webhooks signature: v1,<base64 HMAC-SHA256 of "
            "'<webhook-id>.<webhook-timestamp>.<body>'> with the whsec_ secret shared "
            "with the sender; webhook-id and webhook-timestamp headers are required too."
        ),
    },
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A role token (satgas, head, ops, admin) from the gateway's settings.",
    },
}


# Every name a route's path has between braces, described once.
PATH_PARAMETERS: Mapping[str, str] = {
    "case_id": "The case's id (urn:tangerangkota:kdrt:<ULID>), as intake answered it.",
    "subscription_id": "The subscription's id, as its creation answered it.",
    "name": "A file of the ops console (app.js, app.css).",
}


def _parameters(route: "Route") -> list[dict[str, Any]]:
    in_path = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS[name],
            "schema": {"type": "string"},
        }
        for name in re.findall(r"{([^}]+)}", route.path)
    ]
    declared = [
        {"name": p.name, "in": p.where, "description": p.description, "schema": dict(p.schema)}
        for p in route.parameters
    ]
    return in_path + declared


def _models(routes: Sequence["Route"]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    # every operation may answer a problem (429 at least)
    seen: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for route in routes:
        if route.request is not None:
            seen[(route.request, "validation")] = None
        for answer in route.answers.values():
            if answer.model is not None:
                seen[(answer.model, "serialization")] = None
    return list(seen)


def _problem_answer(description: str) -> dict[str, Any]:
    schema = {"$ref": REF_TEMPLATE.format(model="Problem")}
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


def _operation(route: "Route", refs: Mapping[tuple[Any, JsonSchemaMode], Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    if parameters := _parameters(route):
        operation["parameters"] = parameters
    if route.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(route.request, "validation")]}},
        }
    responses: dict[str, Any] = {}
    for status, answer in sorted(route.answers.items()):
        item: dict[str, Any] = {"description": answer.description}
        schema = refs[(answer.model, "serialization")] if answer.model else {}
        if answer.media_type == "text/plain":
            schema = {"type": "string"}
        item["content"] = {answer.media_type: {"schema": schema}} | {
            also: {"schema": {"type": "string"}} for also in answer.also
        }
        responses[str(status)] = item
    operation["responses"] = responses
    responses.setdefault(
        "429", _problem_answer("Too many requests from this source or token; see Retry-After.")
    )
    if route.roles:
        operation["security"] = [{"bearerToken": []}]
        operation["x-roles"] = sorted(role.value for role in route.roles)
        responses.setdefault("401", _problem_answer("Missing or unknown bearer token."))
        responses.setdefault("403", _problem_answer("The token's role may not call this."))
    else:
        operation["security"] = [{route.security: []}] if route.security else []
    return operation


def openapi_document(routes: Sequence["Route"]) -> dict[str, Any]:
    refs, definitions = models_json_schema(_models(routes), ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tangerang KDRT emergency gateway",
            "version": __version__,
            "description": (
                "Bridges Si Lacak Perak reports to UPTD PPA, Tangerang Siaga 112 and "
                "partner agencies (SOP 357/2025)."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
