"""HttpPusher against a real aiohttp server, and every aiohttp client error translated."""

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_exceptions import UnixClientConnectorError
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy
from pytest_aiohttp import AiohttpServer
from yarl import URL

from gateway.adapters.push_client import BODY_HEAD_BYTES, HttpPusher
from gateway.errors import TransientDeliveryError

BODY = b'{"distribution_id":"d-1","kind":"report"}'
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "d-1",
    "webhook-timestamp": "1796013910",
    "webhook-signature": "v1,c2lnbmF0dXJl",
    "idempotency-key": "d-1",
}

RECEIVED: web.AppKey[list[tuple[CIMultiDictProxy[str], bytes]]] = web.AppKey("received", list)


async def _record(request: web.Request) -> web.Response:
    request.app[RECEIVED].append((request.headers, await request.read()))
    return web.json_response({"status": "received"}, status=202)


async def _status(request: web.Request) -> web.Response:
    status = int(request.match_info["code"])
    headers = (
        {"Retry-After": request.query["retry_after"]} if "retry_after" in request.query else {}
    )
    return web.Response(status=status, text=f"answered {status}", headers=headers)


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * (BODY_HEAD_BYTES - 1) + "é".encode() + b"y" * 4000)


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query["s"]))
    return web.Response(status=202)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPTemporaryRedirect("/record")


@pytest.fixture
async def server(aiohttp_server: AiohttpServer) -> TestServer:
    app = web.Application()
    app[RECEIVED] = []
    app.router.add_post("/record", _record)
    app.router.add_post("/status/{code}", _status)
    app.router.add_post("/big", _big)
    app.router.add_post("/slow", _slow)
    app.router.add_post("/redirect", _redirect)
    return await aiohttp_server(app)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


async def test_posts_the_body_and_headers_as_given(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    response = await HttpPusher(session, 5).push(url(server, "/record"), BODY, HEADERS)

    assert response.status == 202
    assert response.body_head == '{"status": "received"}'
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    [(headers, body)] = server.app[RECEIVED]
    assert body == BODY
    for name, value in HEADERS.items():
        assert headers.getall(name) == [value]


@pytest.mark.parametrize("status", [200, 204, 400, 404, 408, 410, 425, 429, 500, 502, 503])
async def test_answers_every_status_without_judging_it(
    server: TestServer, session: aiohttp.ClientSession, status: int
) -> None:
    response = await HttpPusher(session, 5).push(url(server, f"/status/{status}"), BODY, HEADERS)

    assert response.status == status
    assert response.body_head == ("" if status == 204 else f"answered {status}")


async def test_retry_after_is_passed_on_with_a_lowercase_name(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    response = await HttpPusher(session, 5).push(
        url(server, "/status/503?retry_after=7"), BODY, HEADERS
    )

    assert response.status == 503
    assert response.headers["retry-after"] == "7"


async def test_reads_only_the_head_of_a_long_answer(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    response = await HttpPusher(session, 5).push(url(server, "/big"), BODY, HEADERS)

    assert response.status == 200
    assert response.body_head == "x" * (BODY_HEAD_BYTES - 1) + "\N{REPLACEMENT CHARACTER}"


async def test_measures_latency(server: TestServer, session: aiohttp.ClientSession) -> None:
    response = await HttpPusher(session, 5).push(url(server, "/slow?s=0.2"), BODY, HEADERS)

    assert response.status == 202
    assert 0.2 <= response.latency_s < 5


async def test_does_not_follow_redirects(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    response = await HttpPusher(session, 5).push(url(server, "/redirect"), BODY, HEADERS)

    assert response.status == 307
    assert response.headers["location"] == "/record"
    assert server.app[RECEIVED] == []


async def test_a_slow_recipient_is_a_timeout(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(TransientDeliveryError) as caught:
        await HttpPusher(session, 0.05).push(url(server, "/slow?s=0.5"), BODY, HEADERS)

    assert caught.value.error_class == "timeout"


async def test_a_refused_connection_is_a_connection_error(
    session: aiohttp.ClientSession,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(TransientDeliveryError) as caught:
        await HttpPusher(session, 5).push(f"http://127.0.0.1:{port}/", BODY, HEADERS)

    assert caught.value.error_class == "connection_error"
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)


async def test_an_unusable_url_is_a_client_error(session: aiohttp.ClientSession) -> None:
    with pytest.raises(TransientDeliveryError) as caught:
        await HttpPusher(session, 5).push("not a url", BODY, HEADERS)

    assert caught.value.error_class == "client_error"


# Every aiohttp client error, raised where the transport raises it (a client
# middleware stands in for the connection), must leave push() translated.

_KEY = ConnectionKey("c112.example", 443, True, True, None, None, None)
_INFO = aiohttp.RequestInfo(
    URL("https://c112.example/"),
    "POST",
    CIMultiDictProxy(CIMultiDict()),
    URL("https://c112.example/"),
)
_REFUSED = ConnectionRefusedError(111, "Connection refused")

Raise = Callable[[], BaseException]

AIOHTTP_ERRORS: dict[type[BaseException], tuple[Raise, str]] = {
    TimeoutError: (lambda: TimeoutError(), "timeout"),
    aiohttp.ServerTimeoutError: (lambda: aiohttp.ServerTimeoutError("read"), "timeout"),
    aiohttp.ConnectionTimeoutError: (lambda: aiohttp.ConnectionTimeoutError("connect"), "timeout"),
    aiohttp.SocketTimeoutError: (lambda: aiohttp.SocketTimeoutError("sock_read"), "timeout"),
    aiohttp.ServerDisconnectedError: (lambda: aiohttp.ServerDisconnectedError(), "disconnected"),
    aiohttp.ClientConnectionError: (lambda: aiohttp.ClientConnectionError(), "connection_error"),
    aiohttp.ClientConnectionResetError: (
        lambda: aiohttp.ClientConnectionResetError(),
        "connection_error",
    ),
    aiohttp.ClientOSError: (lambda: aiohttp.ClientOSError(104, "reset"), "connection_error"),
    aiohttp.ClientConnectorError: (
        lambda: aiohttp.ClientConnectorError(_KEY, _REFUSED),
        "connection_error",
    ),
    aiohttp.ClientConnectorDNSError: (
        lambda: aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "Name or service not known")),
        "connection_error",
    ),
    aiohttp.ClientProxyConnectionError: (
        lambda: aiohttp.ClientProxyConnectionError(_KEY, _REFUSED),
        "connection_error",
    ),
    UnixClientConnectorError: (
        lambda: UnixClientConnectorError("/run/c112.sock", _KEY, _REFUSED),
        "connection_error",
    ),
    aiohttp.ServerConnectionError: (lambda: aiohttp.ServerConnectionError(), "connection_error"),
    aiohttp.ClientSSLError: (lambda: aiohttp.ClientSSLError(_KEY, OSError()), "tls_error"),
    aiohttp.ClientConnectorSSLError: (
        lambda: aiohttp.ClientConnectorSSLError(_KEY, ssl.SSLError(1, "handshake")),
        "tls_error",
    ),
    aiohttp.ClientConnectorCertificateError: (
        lambda: aiohttp.ClientConnectorCertificateError(
            _KEY, ssl.SSLCertVerificationError(1, "certificate has expired")
        ),
        "tls_error",
    ),
    aiohttp.ServerFingerprintMismatch: (
        lambda: aiohttp.ServerFingerprintMismatch(b"a" * 32, b"b" * 32, "c112.example", 443),
        "tls_error",
    ),
    aiohttp.ClientError: (lambda: aiohttp.ClientError(), "client_error"),
    aiohttp.ClientPayloadError: (lambda: aiohttp.ClientPayloadError("truncated"), "client_error"),
    aiohttp.ClientResponseError: (
        lambda: aiohttp.ClientResponseError(_INFO, (), status=502),
        "client_error",
    ),
    aiohttp.ContentTypeError: (lambda: aiohttp.ContentTypeError(_INFO, ()), "client_error"),
    aiohttp.ClientHttpProxyError: (
        lambda: aiohttp.ClientHttpProxyError(_INFO, (), status=407),
        "client_error",
    ),
    aiohttp.TooManyRedirects: (lambda: aiohttp.TooManyRedirects(_INFO, ()), "client_error"),
    aiohttp.WSServerHandshakeError: (
        lambda: aiohttp.WSServerHandshakeError(_INFO, ()),
        "client_error",
    ),
    aiohttp.UploadAbortedError: (lambda: aiohttp.UploadAbortedError(), "client_error"),
    aiohttp.InvalidURL: (lambda: aiohttp.InvalidURL("::"), "client_error"),
    aiohttp.InvalidUrlClientError: (lambda: aiohttp.InvalidUrlClientError("::"), "client_error"),
    aiohttp.RedirectClientError: (lambda: aiohttp.RedirectClientError(), "client_error"),
    aiohttp.NonHttpUrlClientError: (
        lambda: aiohttp.NonHttpUrlClientError("ftp://c112.example"),
        "client_error",
    ),
    aiohttp.InvalidUrlRedirectClientError: (
        lambda: aiohttp.InvalidUrlRedirectClientError("::"),
        "client_error",
    ),
    aiohttp.NonHttpUrlRedirectClientError: (
        lambda: aiohttp.NonHttpUrlRedirectClientError("ftp://c112.example"),
        "client_error",
    ),
}


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_the_table_covers_every_aiohttp_client_error() -> None:
    aiohttp_errors = {
        cls
        for cls in _subclasses(aiohttp.ClientError) | {aiohttp.ClientError}
        if cls.__module__.startswith("aiohttp.")
    }

    assert aiohttp_errors - AIOHTTP_ERRORS.keys() == set()


def _raising(exc: BaseException) -> aiohttp.ClientMiddlewareType:
    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        raise exc

    return middleware


@pytest.mark.parametrize(
    ("error", "error_class"),
    [pytest.param(make, label, id=cls.__name__) for cls, (make, label) in AIOHTTP_ERRORS.items()],
)
async def test_every_client_error_leaves_push_translated(
    server: TestServer, error: Raise, error_class: str
) -> None:
    exc = error()
    async with aiohttp.ClientSession(middlewares=(_raising(exc),)) as failing:
        with pytest.raises(TransientDeliveryError) as caught:
            await HttpPusher(failing, 5).push(url(server, "/record"), BODY, HEADERS)

    assert caught.value.error_class == error_class
    assert caught.value.__cause__ is exc


async def test_errors_that_are_not_delivery_failures_are_not_swallowed(
    server: TestServer,
) -> None:
    async with aiohttp.ClientSession(middlewares=(_raising(KeyError("bug")),)) as failing:
        with pytest.raises(KeyError):
            await HttpPusher(failing, 5).push(url(server, "/record"), BODY, HEADERS)
