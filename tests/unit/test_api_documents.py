"""The OpenAPI and AsyncAPI documents, checked from outside: each with an independent
validator of its standard (openapi-spec-validator; the AsyncAPI initiative's own parser,
run by Node.js, installed by `make test`)."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from gateway.adapters.api import ROUTES
from gateway.adapters.openapi import openapi_document
from gateway.adapters.routes import Answer, Parameter, Route

ROOT = Path(__file__).parents[2]
ASYNCAPI_CHECK = ROOT / "tests" / "asyncapi"
ERROR, WARNING = 0, 1


def openapi_errors(document: dict[str, Any]) -> list[str]:
    return [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    assert openapi_errors(openapi_document(ROUTES)) == []


async def _answer(_: object) -> Any:
    raise NotImplementedError


def test_a_path_parameter_left_undeclared_is_an_error_the_validator_sees() -> None:
    bare = openapi_document(ROUTES)
    operation = bare["paths"]["/v1/cases/{case_id}"]["get"]
    operation["parameters"] = [p for p in operation["parameters"] if p["in"] != "path"]
    assert openapi_errors(bare) != []


def test_query_parameters_and_other_media_types_are_documented() -> None:
    route = Route(
        "GET",
        "/v1/things/{case_id}",
        _answer,
        "getThings",
        "Things.",
        answers={200: Answer("Things.", also=("text/csv",))},
        public=True,
        parameters=(Parameter("since", "From then.", {"type": "string", "format": "date-time"}),),
    )
    document = openapi_document([route])
    operation = document["paths"]["/v1/things/{case_id}"]["get"]
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("case_id", "path"),
        ("since", "query"),
    ]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert openapi_errors(document) == []


def asyncapi_diagnostics(path: Path) -> dict[str, Any]:
    validator = ASYNCAPI_CHECK / "node_modules" / "@asyncapi" / "parser"
    assert validator.exists(), "run scripts/ensure-asyncapi-parser.sh (make test does)"
    answer = subprocess.run(
        ["node", str(ASYNCAPI_CHECK / "validate.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: dict[str, Any] = json.loads(answer.stdout)
    return found


def test_the_asyncapi_document_parses_without_errors_or_warnings() -> None:
    found = asyncapi_diagnostics(ROOT / "contracts" / "asyncapi.json")
    assert found["parsed"]
    serious = [d for d in found["diagnostics"] if d["severity"] in (ERROR, WARNING)]
    assert serious == []


@pytest.mark.parametrize(
    ("breakage", "code"),
    [
        ("discriminator", "asyncapi-document-resolved"),
        ("parameter", "asyncapi3-channel-parameters"),
    ],
)
def test_the_asyncapi_parser_sees_what_it_checks(tmp_path: Path, breakage: str, code: str) -> None:
    document = json.loads((ROOT / "contracts" / "asyncapi.json").read_text(encoding="utf-8"))
    if breakage == "discriminator":
        delivery = document["components"]["schemas"]["NewSubscription"]["properties"]["delivery"]
        delivery["discriminator"] = {"propertyName": delivery["discriminator"]}
    else:
        del document["channels"]["partnerQueue"]["parameters"]["namespace"]
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(document), encoding="utf-8")
    codes = {d["code"] for d in asyncapi_diagnostics(broken)["diagnostics"] if d["severity"] == 0}
    assert code in codes
