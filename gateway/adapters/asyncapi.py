"""The AsyncAPI 3.0 document of the gateway's topics, partner queues and partner webhooks,
made from the contracts and the redaction profiles (committed as ``contracts/asyncapi.json``;
a test keeps it current; served at ``GET /asyncapi.json``).

Each partner role gets its own message whose ``content`` schema is the case schema cut
down to that role's profile, so the document shows exactly what each role receives.
"""

import json
from pathlib import Path
from typing import Any

from contracts.case import CASE_SCHEMA, Case, RiskLevel
from contracts.envelope import Envelope, RecipientRole
from contracts.status_report import SLA_EVENT_SCHEMA, STATUS_REPORT_SCHEMA, SlaEvent, StatusReport
from contracts.subscription import NewSubscription
from gateway import wilayah
from gateway.redaction import PROFILES

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1.0.0"
MISSING_WORD = "-"


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by its definition."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**target, **rest}, defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def _object_of(node: dict[str, Any]) -> dict[str, Any] | None:
    """The object schema inside ``node`` (through ``anyOf`` with null), if there is one."""
    if "properties" in node:
        return node
    for branch in node.get("anyOf", []):
        if "properties" in branch:
            return dict(branch)
    return None


def _prune(node: dict[str, Any], paths: set[str]) -> dict[str, Any]:
    """Keep the properties named by ``paths`` (profile notation, relative to ``node``)."""
    keep: dict[str, set[str]] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        keep.setdefault(head.removesuffix("[]"), set())
        if rest:
            keep[head.removesuffix("[]")].add(rest)
    properties: dict[str, Any] = {}
    for name, sub in keep.items():
        prop = node["properties"][name]
        if sub:
            prop = _prune_nested(prop, sub)
        properties[name] = prop
    pruned = {k: v for k, v in node.items() if k not in ("properties", "required")}
    pruned["properties"] = properties
    required = [r for r in node.get("required", []) if r in properties]
    if required:
        pruned["required"] = required
    return pruned


def _prune_nested(prop: dict[str, Any], paths: set[str]) -> dict[str, Any]:
    if prop.get("type") == "array":
        return {**prop, "items": _prune_nested(prop["items"], paths)}
    if "anyOf" in prop:
        return {
            **prop,
            "anyOf": [
                b if b.get("type") == "null" else _prune_nested(b, paths) for b in prop["anyOf"]
            ],
        }
    inner = _object_of(prop)
    if inner is None:
        raise ValueError("a redaction path steps into a field that is not an object")
    return _prune(inner, paths)


def redacted_case_schema(role: RecipientRole) -> dict[str, Any]:
    """The case schema as ``role`` receives it (``case_id`` travels in the envelope)."""
    schema = Case.model_json_schema(mode="serialization")
    full = _inline({k: v for k, v in schema.items() if k != "$defs"}, schema.get("$defs", {}))
    pruned = _prune(full, set(PROFILES[role]))
    pruned["title"] = f"kdrt-case/1 for {role.value}"
    pruned["description"] = (
        f"The case redacted with the {role.value} profile; fields left out are never sent. "
        "Without the victim's consent victims[].phone is left out for every role but police."
    )
    return pruned


def _schema(model: Any) -> dict[str, Any]:
    schema: dict[str, Any] = _asyncapi_discriminators(
        model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    )
    return schema


def _asyncapi_discriminators(node: Any) -> Any:
    """``node`` with each OpenAPI-style discriminator (an object with ``propertyName``)
    made AsyncAPI's: the property's name alone."""
    if isinstance(node, dict):
        return {
            key: value["propertyName"]
            if key == "discriminator" and isinstance(value, dict)
            else _asyncapi_discriminators(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_asyncapi_discriminators(item) for item in node]
    return node


def _components_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (Envelope, SlaEvent, StatusReport, NewSubscription):
        schema = _schema(model)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for role in RecipientRole:
        schemas[f"CaseFor_{role.value}"] = redacted_case_schema(role)
    return schemas


def _message(name: str, summary: str, schema: str, profile: str, content_ref: str) -> Any:
    return {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                {
                    "type": "object",
                    "properties": {
                        "schema": {"const": schema},
                        "redaction_profile": {"const": profile},
                        "content": {"$ref": content_ref},
                    },
                },
            ]
        },
        "correlationId": {"location": "$message.payload#/distribution_id"},
    }


_TOPICS: tuple[tuple[str, str, str, str], ...] = (
    # channel id, entity.event, what it announces, message id
    ("caseCreated", "case.created", "A report was accepted as a new case.", "caseForDashboard"),
    ("slaWarning", "sla.warning", "An SOP step reached 80 % of its time standard.", "slaEvent"),
    ("slaBreached", "sla.breached", "An SOP step passed its time standard.", "slaEvent"),
    ("statusReported", "status.status", "A status report (SOP 6) was made.", "statusReport"),
    ("handlingReported", "status.handling", "The handling report (SOP 8).", "statusReport"),
)


def asyncapi_document() -> dict[str, Any]:
    kecamatan = sorted(wilayah.kecamatan_slug(k.code) for k in wilayah.all_kecamatan())
    parameters = {
        "kecamatan": {
            "enum": [*kecamatan, MISSING_WORD],
            "description": "Kecamatan slug; '-' when the event has none.",
        },
        "risk": {
            "enum": [level.value for level in RiskLevel] + [MISSING_WORD],
            "description": "Risk level of the case; '-' when the event has none.",
        },
    }
    events_exchange = {
        "name": "{namespace}.events",
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }
    messages: dict[str, Any] = {
        "caseForDashboard": _message(
            "caseForDashboard",
            "A case as dashboards (and the events exchange) carry it: S0/S1 only.",
            CASE_SCHEMA,
            RecipientRole.DASHBOARD.value,
            "#/components/schemas/CaseFor_dashboard",
        ),
        "statusReport": _message(
            "statusReport",
            "A status or handling report, as 112 gets it: coded S0/S1 data only.",
            STATUS_REPORT_SCHEMA,
            RecipientRole.DASHBOARD.value,
            "#/components/schemas/StatusReport",
        ),
        "slaEvent": _message(
            "slaEvent",
            "An SOP step's deadline warning or breach (S0/S1 only).",
            SLA_EVENT_SCHEMA,
            RecipientRole.DASHBOARD.value,
            "#/components/schemas/SlaEvent",
        ),
    }
    for role in RecipientRole:
        messages[f"caseFor_{role.value}"] = _message(
            f"caseFor_{role.value}",
            f"A case for a partner subscribed with role {role.value}.",
            CASE_SCHEMA,
            role.value,
            f"#/components/schemas/CaseFor_{role.value}",
        )
    partner_messages = {
        **{
            f"caseFor_{r.value}": {"$ref": f"#/components/messages/caseFor_{r.value}"}
            for r in RecipientRole
        },
        "slaEvent": {"$ref": "#/components/messages/slaEvent"},
        "statusReport": {"$ref": "#/components/messages/statusReport"},
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel_id, words, description, message in _TOPICS:
        channels[channel_id] = {
            "address": words + ".{kecamatan}.{risk}",
            "title": words,
            "description": description
            + " Routing key <entity>.<event>.<kecamatan>.<risk> on the topic exchange.",
            "parameters": parameters,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": events_exchange}},
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"The gateway publishes {words} events (dashboard profile).",
        }
    channels["partnerQueue"] = {
        "address": "{namespace}.partner.{agency}",
        "title": "An agency's own AMQP queue",
        "description": (
            "Durable quorum queue of one agency with an AMQP subscription. Only the partner "
            "router publishes to it (through the direct exchange {namespace}.partner), each "
            "event made anew from the stored case with the subscription's role profile. "
            "Read it with the broker user `gateway partner-access <agency>` prints."
        ),
        "parameters": {
            "namespace": {"description": "The deployment's GATEWAY_NAMESPACE."},
            "agency": {"description": "The subscription's agency_id."},
        },
        "messages": partner_messages,
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": "{namespace}.partner.{agency}",
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
            }
        },
    }
    channels["partnerWebhook"] = {
        "address": "{url}",
        "title": "A webhook subscription's URL",
        "description": (
            "Standard Webhooks POSTs signed with the subscription's own whsec_ secret; "
            "webhook-id is the envelope's distribution_id, the same on every retry."
        ),
        "parameters": {"url": {"description": "The subscription's delivery.url."}},
        "messages": partner_messages,
        "bindings": {"http": {"method": "POST"}},
    }
    operations["sendToPartnerQueue"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/partnerQueue"},
        "summary": "The partner router puts each matching event, redacted, on the queue.",
    }
    operations["sendToPartnerWebhook"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/partnerWebhook"},
        "summary": "The subscription's delivery worker POSTs each matching event, redacted.",
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Tangerang KDRT gateway: case topics and partner deliveries",
            "version": DOCUMENT_VERSION,
            "description": (
                "Every name is under the deployment's namespace (GATEWAY_NAMESPACE). "
                "Partners subscribe with POST /v1/subscriptions using AMQP topic patterns "
                "over <entity>.<event>.<kecamatan>.<risk>; they receive the topics below "
                "as the envelope, its content redacted for their role."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ (GATEWAY_AMQP_URL).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _components_schemas(), "messages": messages},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_asyncapi(path: Path) -> Path:
    path.write_text(render(asyncapi_document()), encoding="utf-8")
    return path
