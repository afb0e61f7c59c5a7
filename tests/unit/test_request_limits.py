"""Strict JSON within limits, and the token buckets behind the rate limit."""

import json
import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters.rate_limit import TokenBuckets, rate_limit_middleware
from gateway.adapters.request_body import BodyRefused, JsonLimits, parse_json

SMALL = JsonLimits(
    max_depth=3, max_array_items=2, max_object_members=2, max_string_chars=5, max_key_chars=3
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("document", "pointers"),
    [
        ({"a": "12345"}, []),
        ({"a": "123456"}, ["/a"]),
        ({"a": ["x", "y"]}, []),
        ({"a": ["x", "y", "z"]}, ["/a"]),
        ({"a": 1, "b": 2, "c": 3}, [""]),
        ({"abcd": 1}, [""]),
        (nested(3), []),
        (nested(4), ["/a/a/a"]),
        ({"a/b": "123456", "c~": "123456"}, ["/a~1b", "/c~0"]),
        ([["123456"], {"k": "123456"}], ["/0/0", "/1/k"]),
        ("123456", [""]),
    ],
)
def test_limits_name_every_place_they_are_broken(document: Any, pointers: list[str]) -> None:
    raw = json.dumps(document).encode()
    if not pointers:
        assert parse_json(raw, SMALL) == document
        return
    with pytest.raises(BodyRefused) as refused:
        parse_json(raw, SMALL)
    assert refused.value.status == 422
    assert refused.value.slug == "limits-exceeded"
    assert refused.value.raw == raw
    assert [e.pointer for e in refused.value.errors] == pointers
    assert all("123456" not in e.detail for e in refused.value.errors)


def test_errors_are_capped() -> None:
    raw = json.dumps({"a": ["123456"] * 2}).encode()
    limits = JsonLimits(max_string_chars=5, max_array_items=1000)
    many = json.dumps(["123456"] * 500).encode()
    with pytest.raises(BodyRefused) as refused:
        parse_json(many, limits)
    assert len(refused.value.errors) == 20
    with pytest.raises(BodyRefused):
        parse_json(raw, limits)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"a": NaN}', 400),
        (b"\xff", 400),
        (b'{"a": 1, "a": 2}', 422),
    ],
)
def test_hostile_json_is_refused_without_a_crash(raw: bytes, status: int) -> None:
    with pytest.raises(BodyRefused) as refused:
        parse_json(raw)
    assert refused.value.status == status


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("per_s", "burst", "steps", "expected"),
    [
        (1.0, 2, [0, 0, 0], [0.0, 0.0, 1.0]),
        (2.0, 1, [0, 0, 0.25, 0.25], [0.0, 0.5, 0.25, 0.0]),
        (1.0, 3, [0, 0, 0, 10, 0, 0, 0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
        (0.5, 1, [0, 1], [0.0, 1.0]),
    ],
)
def test_token_bucket_grants_a_burst_then_its_rate(
    per_s: float, burst: int, steps: list[float], expected: list[float]
) -> None:
    clock = FakeMonotonic()
    buckets = TokenBuckets(per_s=per_s, burst=burst, clock=clock)
    waits = []
    for step in steps:
        clock.now += step
        waits.append(buckets.take("k"))
    assert waits == pytest.approx(expected)


def test_each_key_has_its_own_bucket() -> None:
    clock = FakeMonotonic()
    buckets = TokenBuckets(per_s=1.0, burst=1, clock=clock)
    assert buckets.take("ip:1") == 0.0
    assert buckets.take("ip:1") > 0
    assert buckets.take("ip:2") == 0.0
    assert buckets.take("token:x") == 0.0


# --- properties: whatever bytes arrive, the answer is a value or a clean refusal ---------

JSON_POINTER = re.compile(r"(/([^~/]|~[01])*)*")
json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=30,
).map(json.dumps)


def refusal_of(raw: bytes) -> BodyRefused | None:
    """The refusal, or ``None`` when parsed; any other exception fails the test."""
    try:
        parse_json(raw, SMALL)
    except BodyRefused as refused:
        return refused
    return None


def check_parse(raw: bytes) -> None:
    refused = refusal_of(raw)
    if refused is None:
        return
    assert refused.status in {400, 422}
    assert refused.raw == raw
    assert refused.detail
    if refused.status == 422:
        assert refused.errors
    for error in refused.errors:
        assert JSON_POINTER.fullmatch(error.pointer), error.pointer
        assert error.detail


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused_cleanly(raw: bytes) -> None:
    check_parse(raw)


@settings(max_examples=300, deadline=None)
@given(json_text)
def test_any_json_is_parsed_or_refused_naming_where(text: str) -> None:
    check_parse(text.encode())


class Peer:
    """The transport end of a request from ``ip``: all the middleware asks of it."""

    def __init__(self, ip: str) -> None:
        self.ip = ip

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.ip, 40000) if name == "peername" else default


async def answered(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


@pytest.mark.parametrize(
    ("requests", "statuses"),
    [
        ([("10.0.0.1", None)] * 3, [200, 200, 429]),
        ([("10.0.0.1", None), ("10.0.0.2", None), ("10.0.0.3", None)], [200, 200, 200]),
        ([("10.0.0.1", "t"), ("10.0.0.2", "t"), ("10.0.0.3", "t")], [200, 200, 429]),
        ([("10.0.0.1", "t"), ("10.0.0.1", "u"), ("10.0.0.2", "u")], [200, 200, 200]),
    ],
)
async def test_the_rate_limit_counts_per_source_ip_and_per_token(
    requests: list[tuple[str, str | None]], statuses: list[int]
) -> None:
    middleware = rate_limit_middleware(TokenBuckets(per_s=0.001, burst=2, clock=FakeMonotonic()))
    answers = []
    for ip, token in requests:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = make_mocked_request("GET", "/x", headers=headers, transport=Peer(ip))
        answers.append(await middleware(request, answered))
    assert [a.status for a in answers] == statuses
    refused = [a for a in answers if a.status == 429]
    assert all(a.headers["Retry-After"] == "1000" for a in refused)
    assert all(a.content_type == "application/problem+json" for a in refused)
