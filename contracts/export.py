"""The contracts' JSON Schemas, as committed under ``contracts/schemas/``."""

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contracts.case import Case, CaseAccepted
from contracts.envelope import Envelope
from contracts.problem import Problem
from contracts.receipt import Receipt
from contracts.si_lacak_perak import LaporanSiLacakPerak
from contracts.status_report import SlaEvent, StatusReport
from contracts.subscription import NewSubscription, SubscriptionCreated, SubscriptionList
from contracts.workflow import CaseEventRequest, CaseView, SimfoniExport, SlaReport

SCHEMAS: dict[str, type[BaseModel]] = {
    "kdrt-case-1": Case,
    "envelope": Envelope,
    "si-lacak-perak-report-1": LaporanSiLacakPerak,
    "c112-receipt": Receipt,
    "case-accepted": CaseAccepted,
    "problem": Problem,
    # SOP 357 workflow (issue 4)
    "status-report-1": StatusReport,
    "sla-event-1": SlaEvent,
    "case-event": CaseEventRequest,
    "case-view": CaseView,
    "sla-report": SlaReport,
    "simfoni-export": SimfoniExport,
    # partner subscriptions (issue 5)
    "subscription-new": NewSubscription,
    "subscription-created": SubscriptionCreated,
    "subscription-list": SubscriptionList,
}


def schema_documents() -> dict[str, dict[str, Any]]:
    documents = {}
    for name, model in SCHEMAS.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:tangerangkota:kdrt-gateway:schema:{name}"
        documents[name] = schema
    return documents


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in schema_documents().items():
        path = directory / f"{name}.schema.json"
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written
