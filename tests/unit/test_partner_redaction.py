"""Per-role redaction on the partner path, over generated cases (hypothesis).

``test_redaction.py`` checks ``redact_case`` itself; these check what actually leaves
for a partner: the whole envelope as sent, every string in it, and the log lines.
"""

import json
import re
from datetime import UTC, datetime
from itertools import count
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from samples import fixture_json, valid_01_case
from test_redaction import (
    NOBODY_GETS,
    S2_CLEARED,
    S3_CLEARED,
    cases,
    leaf_paths,
)

from contracts.case import CASE_SCHEMA, Case
from contracts.envelope import DistributionKind, Envelope, RecipientRole
from contracts.sensitivity import Sensitivity
from contracts.subscription import DeliveryMode, SubscriptionStatus
from gateway.logs import scrub_personal_data
from gateway.partners import Subscription, partner_envelope
from gateway.redaction import FIELD_SENSITIVITY, redact_case
from gateway.si_lacak_perak import normalise_report

S0, S1, S2, S3 = Sensitivity.S0, Sensitivity.S1, Sensitivity.S2, Sensitivity.S3
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
KEY = "case.created.pinang.high"
_MARKER = re.compile(r"pii\d{4}")


def subscription(role: RecipientRole) -> Subscription:
    return Subscription(
        subscription_id="sub-01jdxk7q2m8w3v5t9r6n4b2c1a",
        agency_id="agency",
        role=role,
        patterns=("#",),
        mode=DeliveryMode.AMQP,
        status=SubscriptionStatus.ACTIVE,
        created_at=NOW,
        updated_at=NOW,
    )


def event_of(case: Case) -> Envelope:
    """The event as routing puts it on the events exchange: dashboard profile."""
    return Envelope.model_validate(
        {
            "distribution_id": "2f1c6b57-7a0e-4d33-9b8e-1f2a3c4d5e6f",
            "sent_at": NOW,
            "kind": DistributionKind.REPORT,
            "schema": CASE_SCHEMA,
            "case_id": case.case_id,
            "sequence": 1,
            "routing_key": KEY,
            "redaction_profile": RecipientRole.DASHBOARD,
            "content": redact_case(case, RecipientRole.DASHBOARD),
        }
    )


def sent_body(case: Case, role: RecipientRole) -> dict[str, Any]:
    envelope = partner_envelope(event_of(case), KEY, case, subscription(role))
    body: dict[str, Any] = json.loads(envelope.model_dump_json(by_alias=True, exclude_none=True))
    return body


def marked(case: Case) -> tuple[Case, dict[str, str]]:
    """``case`` with every free-text S2/S3 value replaced by a unique marker, and the
    field path of each marker, so a leak can be found anywhere in a message."""
    numbers = count()
    where: dict[str, str] = {}
    free_text = {"nik"}  # NIK has a pattern; it is found by its own digits below

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(item, path + "[]") for item in value]
        leaf = path.rsplit(".", 1)[-1]
        if (
            isinstance(value, str)
            and FIELD_SENSITIVITY.get(path) in (S2, S3)
            and leaf not in free_text
            and path != "attachments[].url"
        ):
            marker = f"pii{next(numbers):04d}"
            where[marker] = path
            return marker
        return value

    data = walk(case.model_dump(mode="json"), "")
    return Case.model_validate(data), where


def cleared(case: Case, role: RecipientRole) -> frozenset[str]:
    s3 = S3_CLEARED[role]
    if not case.consent.share_victim_data and role is not RecipientRole.POLICE:
        s3 -= {"victims[].phone"}
    return s3 | S2_CLEARED[role]


@settings(max_examples=150, deadline=None)
@given(case=cases, role=st.sampled_from(RecipientRole))
def test_no_uncleared_value_appears_anywhere_in_what_a_partner_is_sent(
    case: Case, role: RecipientRole
) -> None:
    case, where = marked(case)

    text = json.dumps(sent_body(case, role))

    leaked = {where[m] for m in _MARKER.findall(text)} - cleared(case, role)
    assert not leaked
    for victim in case.victims:
        if victim.nik:
            assert victim.nik not in text


@settings(max_examples=150, deadline=None)
@given(case=cases, role=st.sampled_from(RecipientRole))
def test_a_partner_envelope_carries_case_data_only_in_its_content(
    case: Case, role: RecipientRole
) -> None:
    body = sent_body(case, role)
    content = body.pop("content")
    received = leaf_paths(content)

    assert {p for p in received if FIELD_SENSITIVITY[p] is S3} <= cleared(case, role)
    assert {p for p in received if FIELD_SENSITIVITY[p] is S2} <= cleared(case, role)
    assert not {p for p in received if p.startswith(NOBODY_GETS)}
    assert body["redaction_profile"] == role.value
    assert set(body) <= {
        "distribution_id",
        "sender_id",
        "sent_at",
        "status",
        "kind",
        "schema",
        "case_id",
        "sequence",
        "references",
        "recipient_roles",
        "keywords",
        "confidentiality",
        "routing_key",
        "redaction_profile",
    }


@settings(max_examples=150, deadline=None)
@given(case=cases)
def test_dashboards_get_neither_s2_s3_nor_a_place_finer_than_kecamatan(case: Case) -> None:
    case, _ = marked(case)
    body = sent_body(case, RecipientRole.DASHBOARD)
    received = leaf_paths(body["content"])

    assert {FIELD_SENSITIVITY[p] for p in received} <= {S0, S1}
    assert {p for p in received if p.startswith("location.")} <= {
        "location.kecamatan.code",
        "location.kecamatan.name",
    }
    assert not _MARKER.findall(json.dumps(body))


@settings(max_examples=150, deadline=None)
@given(case=cases, role=st.sampled_from(RecipientRole))
def test_logs_get_no_s2_or_s3(case: Case, role: RecipientRole) -> None:
    """Even a careless log line carrying the case and what was sent keeps only S0/S1."""
    case, _ = marked(case)
    event: dict[str, Any] = {
        "event": "partner_router.routed",
        "case": case.model_dump(mode="json"),
        "sent": sent_body(case, role),
        **case.model_dump(mode="json"),
    }

    scrubbed = scrub_personal_data(None, "info", event)

    assert not _MARKER.findall(json.dumps(scrubbed, default=str))
    for path in leaf_paths(scrubbed["case"]):
        assert FIELD_SENSITIVITY[path] in (S0, S1), path


def anonymous_report(anonymous: bool) -> dict[str, Any]:
    raw: dict[str, Any] = fixture_json("valid-01-app-basic.json")
    raw["pelapor"]["anonim"] = anonymous
    return raw


@given(anonymous=st.booleans(), role=st.sampled_from(RecipientRole))
def test_an_anonymous_reporter_reaches_nobody(anonymous: bool, role: RecipientRole) -> None:
    case = normalise_report(
        anonymous_report(anonymous),
        case_id=valid_01_case().case_id,
        received_at=NOW,
    )

    text = json.dumps(sent_body(case, role))

    assert "Siti Rahmawati" not in text
    reporter_number_sent = "+6281200007801" in text
    # a named reporter's number is the callback of the roles that dispatch
    assert reporter_number_sent is (
        not anonymous and role in (RecipientRole.C112, RecipientRole.POLICE, RecipientRole.HEALTH)
    )
    assert (case.callback is None) is anonymous


@given(share=st.booleans(), role=st.sampled_from(RecipientRole))
def test_without_consent_the_victims_contact_goes_to_police_only(
    share: bool, role: RecipientRole
) -> None:
    raw = fixture_json("valid-01-app-basic.json")
    raw["persetujuan"]["berbagi_data_korban"] = share
    case = normalise_report(raw, case_id=valid_01_case().case_id, received_at=NOW)

    text = json.dumps(sent_body(case, role))

    cleared_for_phone = role in (RecipientRole.POLICE, RecipientRole.SOCIAL, RecipientRole.SHELTER)
    expected = cleared_for_phone and (share or role is RecipientRole.POLICE)
    assert ("+6281200007802" in text) is expected
