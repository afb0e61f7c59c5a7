"""A recipient's answer loses what it echoes of the message before it becomes a park
reason: whole personal values, their words, JSON-escaped forms, phone numbers and NIKs;
coded S0/S1 values and the rest of the answer stay readable."""

import json

import pytest
from samples import fixture_bytes

from gateway.answer_text import masked_answer
from gateway.logs import REDACTED

SENT = json.dumps(
    {
        "distribution_id": "d-1",
        "content": {
            "location": {"address": "Jl. Melati No. 12", "rt": "003", "landmark": "dekat masjid"},
            "reporter": {"name": "Siti Rahmawati", "phone": "+6281200007801", "role": "neighbour"},
            "victims": [
                {"name": "Dewi Lëstari", "nik": "3671114107970001", "age": 29, "sex": "female"}
            ],
            "perpetrators": [{"name": "Budi Santoso", "relationship": "husband"}],
            "narrative": "Pelapor mendengar teriakan.",
            "risk": {"level": "high"},
        },
    },
    ensure_ascii=False,
).encode()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("victim Dewi Lëstari already known", f"victim {REDACTED} already known"),
        ("first name dewi only", f"first name {REDACTED} only"),
        ('{"detail": "Dewi L\\u00ebstari"}', f'{{"detail": "{REDACTED}"}}'),
        ("reporter SITI RAHMAWATI", f"reporter {REDACTED}"),
        ("address Jl. Melati No. 12", f"address {REDACTED}"),
        ("perpetrator Santoso", f"perpetrator {REDACTED}"),
        ("narrative: Pelapor mendengar teriakan.", f"narrative: {REDACTED}"),
        ("call 0812-0000-7801", f"call {REDACTED}"),
        ("nik 3671114107970001", f"nik {REDACTED}"),
        ("another 0857 1234 5678", f"another {REDACTED}"),
        (
            "sex female, relationship husband, risk high",
            "sex female, relationship husband, risk high",
        ),
        (
            "distribution d-1 refused: schema /content/risk",
            "distribution d-1 refused: schema /content/risk",
        ),
        ("", ""),
    ],
)
def test_what_an_answer_echoes_is_masked(answer: str, expected: str) -> None:
    assert masked_answer(answer, SENT) == expected


def test_an_unreadable_message_masks_phone_numbers_and_niks_only() -> None:
    assert masked_answer("Dewi 081200007802", b"\xff not json") == f"Dewi {REDACTED}"


def test_the_112_push_of_the_example_masks_its_own_echo() -> None:
    sent = fixture_bytes("c112/push-case-to-112.json")
    content = json.loads(sent)["content"]
    echoed = " | ".join(
        [
            content["location"]["address"],
            content["callback"]["phone"],
            content["location"]["landmark"],
        ]
    )
    assert masked_answer(echoed, sent) == " | ".join([REDACTED] * 3)
