"""Who may call what: every route declares it, and the middleware enforces it."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from gateway_support import delete_namespace, settings_for_test

from contracts.problem import PROBLEM_MEDIA_TYPE
from gateway import cli
from gateway.access import ApiRole
from gateway.adapters.api import ROUTES
from gateway.adapters.auth import ROLE, TokenTable, auth_middleware, token_fingerprint
from gateway.adapters.openapi import SECURITY_SCHEMES
from gateway.adapters.problems import problem_middleware
from gateway.adapters.routes import Route
from gateway.bootstrap import RUNTIME, build_app

pytestmark = pytest.mark.integration

TOKENS = {role: f"token-of-{role.value}-0123456789" for role in ApiRole}
ROLE_ROUTES = [route for route in ROUTES if route.roles]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_declares_who_may_call_it(route: Route) -> None:
    assert route.access_declared, "declare roles, a signature scheme in security, or public=True"
    kinds = [bool(route.roles), route.security is not None, route.public]
    assert kinds.count(True) == 1, "a route is either role-checked, signed or public"
    if route.security is not None:
        assert route.security in SECURITY_SCHEMES


def test_an_undeclared_route_is_caught() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    assert not Route("GET", "/x", handler, "getX", "X.").access_declared


Make = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"role": request[ROLE].value})


async def public(request: web.Request) -> web.Response:
    return web.json_response({"public": True})


@pytest.fixture
async def guarded() -> AsyncIterator[TestClient[Any, Any]]:
    roles = {"headOnly": frozenset({ApiRole.HEAD}), "staff": frozenset(ApiRole)}
    app = web.Application(
        middlewares=[
            problem_middleware,
            auth_middleware(TokenTable(TOKENS), lambda name: roles.get(name or "", frozenset())),
        ]
    )
    app.router.add_get("/head", ok, name="headOnly")
    app.router.add_get("/staff", ok, name="staff")
    app.router.add_get("/open", public, name="open")
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize(
    ("path", "authorization", "status"),
    [
        ("/head", None, 401),
        ("/head", "Bearer ", 401),
        ("/head", "Basic " + TOKENS[ApiRole.HEAD], 401),
        ("/head", "Bearer not-a-token", 401),
        ("/head", "Bearer " + TOKENS[ApiRole.HEAD][:-1], 401),
        ("/head", "Bearer " + TOKENS[ApiRole.SATGAS], 403),
        ("/head", "Bearer " + TOKENS[ApiRole.ADMIN], 403),
        ("/head", "Bearer " + TOKENS[ApiRole.HEAD], 200),
        ("/head", "bearer " + TOKENS[ApiRole.HEAD], 200),
        ("/staff", "Bearer " + TOKENS[ApiRole.OPS], 200),
        ("/open", None, 200),
    ],
)
async def test_401_without_a_known_token_403_for_another_role(
    guarded: TestClient[Any, Any], path: str, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await guarded.get(path, headers=headers)
    assert response.status == status
    if status == 200:
        return
    assert response.content_type == PROBLEM_MEDIA_TYPE
    problem = await response.json(content_type=None)
    assert problem["status"] == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    else:
        assert "head" in problem["detail"]


def role_of(table: TokenTable, token: str) -> ApiRole | None:
    found = table.identify(token)
    return None if found is None else found[0]


def test_a_role_may_have_a_new_token_beside_the_old_one() -> None:
    old, new = TOKENS[ApiRole.OPS], "the-new-ops-token-0123456789"
    table = TokenTable({ApiRole.OPS: f"{new} {old}", ApiRole.HEAD: TOKENS[ApiRole.HEAD]})
    assert role_of(table, old) is ApiRole.OPS
    assert role_of(table, new) is ApiRole.OPS
    assert role_of(table, f"{new} {old}") is None
    assert role_of(TokenTable({ApiRole.OPS: f"{new},{old}"}), old) is ApiRole.OPS


def test_one_token_for_two_roles_is_refused() -> None:
    shared = TOKENS[ApiRole.OPS]
    with pytest.raises(ValueError, match="both ops's and admin's"):
        TokenTable({ApiRole.OPS: shared, ApiRole.ADMIN: f"{TOKENS[ApiRole.ADMIN]} {shared}"})


def test_tokens_are_kept_only_as_digests() -> None:
    table = TokenTable(TOKENS)
    assert all(token not in repr(vars(table)) for token in TOKENS.values())
    assert role_of(table, TOKENS[ApiRole.OPS]) is ApiRole.OPS
    assert role_of(table, "") is None


def test_a_token_is_named_by_its_fingerprint() -> None:
    old, new = TOKENS[ApiRole.OPS], "the-new-ops-token-0123456789"
    table = TokenTable({ApiRole.OPS: f"{new} {old}", ApiRole.HEAD: TOKENS[ApiRole.HEAD]})
    fingerprint = token_fingerprint(new)
    assert fingerprint == "tok_" + hashlib.sha256(new.encode()).hexdigest()[:12]
    assert table.identify(new) == (ApiRole.OPS, fingerprint)
    assert table.identify(old) == (ApiRole.OPS, token_fingerprint(old))
    assert token_fingerprint(old) != fingerprint
    assert table.identify("not-a-token") is None
    assert table.fingerprints() == [
        (ApiRole.OPS, fingerprint),
        (ApiRole.OPS, token_fingerprint(old)),
        (ApiRole.HEAD, token_fingerprint(TOKENS[ApiRole.HEAD])),
    ]


def test_gateway_tokens_prints_each_role_and_fingerprint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    second = "a-second-satgas-token-0123456789"
    monkeypatch.setenv("GATEWAY_OPS_TOKEN", TOKENS[ApiRole.OPS])
    monkeypatch.setenv("GATEWAY_SATGAS_TOKEN", f"{TOKENS[ApiRole.SATGAS]} {second}")
    for unset in ("GATEWAY_HEAD_TOKEN", "GATEWAY_ADMIN_TOKEN"):
        monkeypatch.delenv(unset, raising=False)

    assert cli.main(["tokens"]) == 0

    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"ops\t{token_fingerprint(TOKENS[ApiRole.OPS])}",
        f"satgas\t{token_fingerprint(TOKENS[ApiRole.SATGAS])}",
        f"satgas\t{token_fingerprint(second)}",
    ]
    assert [t for t in (*TOKENS.values(), second) if t in out] == []


@asynccontextmanager
async def real_app(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """The gateway with a token for every role, once its broker topology is up."""
    settings = settings_for_test(
        tmp_path, **{f"{role.value}_token": token for role, token in TOKENS.items()}
    )
    app = build_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        async with asyncio.timeout(15):
            await app[RUNTIME].broker_up.wait()
        yield client
    finally:
        await client.close()
        await delete_namespace(settings)


@pytest.mark.parametrize("route", ROLE_ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_the_real_app_refuses_no_token_and_another_roles_token(
    tmp_path: Path, route: Route
) -> None:
    path = route.path.replace("{", "").replace("}", "")
    async with real_app(tmp_path) as client:
        anonymous = await client.request(route.method, path)
        assert anonymous.status == 401
        assert anonymous.content_type == PROBLEM_MEDIA_TYPE
        [other, *_] = [role for role in ApiRole if role not in route.roles]
        headers = {"Authorization": f"Bearer {TOKENS[other]}"}
        wrong = await client.request(route.method, path, headers=headers)
        assert wrong.status == 403
        assert wrong.content_type == PROBLEM_MEDIA_TYPE


async def test_head_answers_as_get_does_without_a_body(tmp_path: Path) -> None:
    async with real_app(tmp_path) as client:
        for route in (r for r in ROUTES if r.method == "GET"):
            path = route.path.replace("{name}", "ops.js").replace("{", "").replace("}", "")
            headers = {"Authorization": f"Bearer {TOKENS[min(route.roles)]}"} if route.roles else {}
            async with asyncio.timeout(10):  # the live stream too answers its head at once
                head = await client.head(path, headers=headers)
                assert await head.read() == b"", path
            if route.roles:
                assert (await client.head(path)).status == 401, path
            if any(a.media_type == "text/event-stream" for a in route.answers.values()):
                assert (head.status, head.content_type) == (200, "text/event-stream")
                continue
            got = await client.get(path, headers=headers)
            assert (head.status, head.content_type) == (got.status, got.content_type), path
