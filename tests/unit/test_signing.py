"""Standard Webhooks signing, checked against the reference ``standardwebhooks`` package."""

import base64
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from samples import new_secret
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.errors import SignatureInvalid
from gateway.signing import (
    secret_key,
    signature_header,
    split_secrets,
    verify,
    webhook_headers,
)

NOW = datetime(2026, 11, 30, 6, 45, 10, tzinfo=UTC)
BODY = b'{"distribution_id":"0b6a4c1e","kind":"report","content":{"note":"Jl. Melati \xc2\xb7 12"}}'
MSG_ID = "0b6a4c1e-8d1f-4f0e-9d55-3c1f8f6e2a10"


SECRET = new_secret()
OTHER_SECRET = new_secret()


def signed(
    secret_list: list[str], *, msg_id: str = MSG_ID, body: bytes = BODY, now: datetime = NOW
) -> dict[str, str]:
    return webhook_headers(secret_list, msg_id, body, now)


def test_headers_carry_id_timestamp_and_idempotency_key() -> None:
    headers = signed([SECRET])

    assert headers["webhook-id"] == MSG_ID
    assert headers["idempotency-key"] == MSG_ID
    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert headers["content-type"] == "application/json"
    version, _, encoded = headers["webhook-signature"].partition(",")
    assert version == "v1"
    assert len(base64.b64decode(encoded, validate=True)) == 32


def test_reference_library_verifies_our_signature() -> None:
    now = datetime.now(UTC)  # the reference library reads the clock itself

    parsed = Webhook(SECRET).verify(BODY, signed([SECRET], now=now))

    assert parsed["distribution_id"] == "0b6a4c1e"


def test_reference_library_refuses_our_signature_under_another_secret() -> None:
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(BODY, signed([SECRET], now=datetime.now(UTC)))


def test_we_verify_the_reference_library_signature() -> None:
    signature = Webhook(SECRET).sign(MSG_ID, NOW, BODY.decode())
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(int(NOW.timestamp())),
        "webhook-signature": signature,
    }

    assert verify([SECRET], headers, BODY, NOW) == (MSG_ID, int(NOW.timestamp()))
    assert signature_header([SECRET], MSG_ID, int(NOW.timestamp()), BODY) == signature


def test_header_names_are_looked_up_case_insensitively_on_aiohttp_headers() -> None:
    headers = CIMultiDict({k.title(): v for k, v in signed([SECRET]).items()})

    assert verify([SECRET], headers, BODY, NOW) == (MSG_ID, int(NOW.timestamp()))


def test_rotation_signs_once_per_secret_and_either_verifies() -> None:
    headers = signed([SECRET, OTHER_SECRET])

    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OTHER_SECRET):
        assert verify([secret], headers, BODY, NOW) == (MSG_ID, int(NOW.timestamp()))
    with pytest.raises(SignatureInvalid):
        verify([new_secret()], headers, BODY, NOW)


def test_rotation_both_secrets_pass_the_reference_library() -> None:
    headers = signed([SECRET, OTHER_SECRET], now=datetime.now(UTC))

    for secret in (SECRET, OTHER_SECRET):
        Webhook(secret).verify(BODY, headers)


def test_inbound_passes_when_any_configured_secret_matches() -> None:
    old_sender = signed([OTHER_SECRET])

    assert verify([SECRET, OTHER_SECRET], old_sender, BODY, NOW)[0] == MSG_ID


def test_a_good_signature_after_unusable_ones_still_passes() -> None:
    good = signed([SECRET])["webhook-signature"]
    headers = signed([SECRET]) | {"webhook-signature": f"v2,{good[3:]} v1,!!notbase64 v1, {good}"}

    assert verify([SECRET], headers, BODY, NOW)[0] == MSG_ID


@pytest.mark.parametrize(
    ("offset_s", "passes"),
    [
        (-301, False),
        (-300, True),
        (-1, True),
        (0, True),
        (1, True),
        (300, True),
        (301, False),
        (-86_400, False),
        (86_400, False),
    ],
)
def test_timestamp_tolerance_is_300_seconds_either_way(offset_s: int, passes: bool) -> None:
    headers = signed([SECRET], now=NOW + timedelta(seconds=offset_s))

    if passes:
        assert verify([SECRET], headers, BODY, NOW)[0] == MSG_ID
    else:
        with pytest.raises(SignatureInvalid, match="tolerance"):
            verify([SECRET], headers, BODY, NOW)


def test_tolerance_can_be_narrowed() -> None:
    headers = signed([SECRET], now=NOW - timedelta(seconds=31))

    with pytest.raises(SignatureInvalid):
        verify([SECRET], headers, BODY, NOW, tolerance_s=30)


Tamper = Callable[[dict[str, str]], dict[str, str]]


def _tampered_timestamp(h: dict[str, str]) -> dict[str, str]:
    return h | {"webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}


@pytest.mark.parametrize(
    ("tamper", "body"),
    [
        pytest.param(lambda h: h, BODY.replace(b"report", b"update"), id="body"),
        pytest.param(lambda h: h, BODY + b" ", id="body-whitespace"),
        pytest.param(lambda h: h | {"webhook-id": MSG_ID[:-1] + "1"}, BODY, id="id"),
        pytest.param(_tampered_timestamp, BODY, id="timestamp"),
        pytest.param(
            lambda h: h | {"webhook-timestamp": " " + h["webhook-timestamp"]},
            BODY,
            id="timestamp-leading-space",
        ),
    ],
)
def test_tampering_breaks_the_signature(tamper: Tamper, body: bytes) -> None:
    headers = tamper(signed([SECRET]))

    with pytest.raises(SignatureInvalid):
        verify([SECRET], headers, body, NOW)


def _good() -> dict[str, str]:
    return signed([SECRET])


GOOD_SIGNATURE = _good()["webhook-signature"]
GOOD_TIMESTAMP = _good()["webhook-timestamp"]
ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-headers"),
        pytest.param(
            {"webhook-timestamp": GOOD_TIMESTAMP, "webhook-signature": GOOD_SIGNATURE}, id="no-id"
        ),
        pytest.param(
            {"webhook-id": MSG_ID, "webhook-signature": GOOD_SIGNATURE}, id="no-timestamp"
        ),
        pytest.param(
            {"webhook-id": MSG_ID, "webhook-timestamp": GOOD_TIMESTAMP}, id="no-signature"
        ),
        pytest.param(
            {
                "webhook-id": "",
                "webhook-timestamp": GOOD_TIMESTAMP,
                "webhook-signature": GOOD_SIGNATURE,
            },
            id="empty-id",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": "soon",
                "webhook-signature": GOOD_SIGNATURE,
            },
            id="word-timestamp",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": GOOD_TIMESTAMP + ".5",
                "webhook-signature": GOOD_SIGNATURE,
            },
            id="fractional-timestamp",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": "-" + GOOD_TIMESTAMP,
                "webhook-signature": GOOD_SIGNATURE,
            },
            id="negative-timestamp",
        ),
        pytest.param(
            {"webhook-id": MSG_ID, "webhook-timestamp": "²", "webhook-signature": GOOD_SIGNATURE},
            id="superscript-digit",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": GOOD_TIMESTAMP.translate(ARABIC_INDIC_DIGITS),
                "webhook-signature": GOOD_SIGNATURE,
            },
            id="arabic-indic-digits",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": "9" * 400,
                "webhook-signature": GOOD_SIGNATURE,
            },
            id="float-overflow",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": "9" * 5000,
                "webhook-signature": GOOD_SIGNATURE,
            },
            id="int-digits-limit",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": GOOD_TIMESTAMP,
                "webhook-signature": "v2," + GOOD_SIGNATURE[3:],
            },
            id="v2-only",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": GOOD_TIMESTAMP,
                "webhook-signature": GOOD_SIGNATURE[3:],
            },
            id="no-version",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": GOOD_TIMESTAMP,
                "webhook-signature": "v1,@@@@",
            },
            id="bad-base64",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": GOOD_TIMESTAMP,
                "webhook-signature": "v1,é",
            },
            id="non-ascii-base64",
        ),
        pytest.param(
            {"webhook-id": MSG_ID, "webhook-timestamp": GOOD_TIMESTAMP, "webhook-signature": "v1,"},
            id="empty-signature",
        ),
        pytest.param(
            {
                "webhook-id": MSG_ID,
                "webhook-timestamp": GOOD_TIMESTAMP,
                "webhook-signature": "v1," + GOOD_SIGNATURE[3:-4],
            },
            id="truncated",
        ),
        pytest.param(
            {
                "webhook-id": "\udcff",
                "webhook-timestamp": GOOD_TIMESTAMP,
                "webhook-signature": GOOD_SIGNATURE,
            },
            id="undecodable-id-byte",
        ),
    ],
)
def test_malformed_headers_raise_signature_invalid(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        verify([SECRET], headers, BODY, NOW)


ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=80)
SIGNATURE_ITEM = st.one_of(
    ANY_TEXT,
    st.builds(lambda raw: "v1," + base64.b64encode(raw).decode(), st.binary(max_size=40)),
    st.builds(lambda text: "v1," + text, ANY_TEXT),
)


@given(
    msg_id=st.one_of(ANY_TEXT, st.just(MSG_ID)),
    timestamp=st.one_of(
        ANY_TEXT, st.just(GOOD_TIMESTAMP), st.integers().map(str), st.floats().map(str)
    ),
    signature=st.one_of(ANY_TEXT, st.lists(SIGNATURE_ITEM, max_size=4).map(" ".join)),
    body=st.binary(max_size=64),
)
def test_arbitrary_headers_raise_only_signature_invalid(
    msg_id: str, timestamp: str, signature: str, body: bytes
) -> None:
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}

    with pytest.raises(SignatureInvalid):
        verify([SECRET], headers, body, NOW)


@given(headers=st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=4))
def test_arbitrary_header_maps_raise_only_signature_invalid(headers: Mapping[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        verify([SECRET], headers, BODY, NOW)


def test_secret_key_decodes_padded_and_unpadded_secrets() -> None:
    raw = secrets.token_bytes(24)
    padded = base64.b64encode(raw + b"x").decode()
    assert padded.endswith("=")

    assert secret_key("whsec_" + base64.b64encode(raw).decode()) == raw
    assert secret_key("whsec_" + padded.rstrip("=")) == raw + b"x"
    assert secret_key(base64.b64encode(raw).decode()) == raw


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("whsec_not base64!", id="not-base64"),
        pytest.param(
            "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 12).decode(), id="urlsafe-alphabet"
        ),
        pytest.param("whsec_ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏ", id="non-ascii"),
        pytest.param("whsec_" + base64.b64encode(bytes(15)).decode(), id="15-bytes"),
        pytest.param("whsec_", id="empty"),
        pytest.param("whsec_A", id="one-char"),
    ],
)
def test_secret_key_rejects_malformed_secrets(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        secret_key(secret)


def test_signing_with_a_malformed_secret_fails_loudly() -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        webhook_headers(["whsec_short"], MSG_ID, BODY, NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("whsec_a", ["whsec_a"]),
        ("whsec_a whsec_b", ["whsec_a", "whsec_b"]),
        (" whsec_a,whsec_b ,, whsec_c ", ["whsec_a", "whsec_b", "whsec_c"]),
    ],
)
def test_split_secrets(value: str, expected: list[str]) -> None:
    assert split_secrets(value) == expected
