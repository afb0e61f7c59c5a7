"""Bearer tokens per role, compared in constant time, checked by one middleware.

Each route in the route table declares the roles it accepts; a route that declares
none is public or authenticated by a Standard Webhooks signature in its handler.
"""

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.access import ApiRole
from gateway.adapters.problems import problem_response
from gateway.signing import split_secrets

ROLE = web.RequestKey("role", ApiRole)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Tokens kept only as SHA-256 digests; lookups compare every digest.

    Each role's setting may hold several tokens, space- or comma-separated, so that a
    token can be replaced without a moment when neither works; no token may be two
    roles'.
    """

    def __init__(self, tokens: Mapping[ApiRole, str]) -> None:
        owners: dict[bytes, ApiRole] = {}
        for role, setting in tokens.items():
            for token in split_secrets(setting):
                owner = owners.setdefault(_digest(token), role)
                if owner is not role:
                    raise ValueError(f"a token is both {owner.value}'s and {role.value}'s")
        self._digests = [(role, digest) for digest, role in owners.items()]

    def role_of(self, token: str) -> ApiRole | None:
        offered = _digest(token)
        found = None
        for role, digest in self._digests:
            if hmac.compare_digest(offered, digest):
                found = role
        return found


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def auth_middleware(
    tokens: TokenTable, roles_of_route: Callable[[str | None], frozenset[ApiRole]]
) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        allowed = roles_of_route(request.match_info.route.name)
        if not allowed:
            return await handler(request)
        challenge = {"WWW-Authenticate": 'Bearer realm="gateway"'}
        token = bearer_token(request)
        if token is None:
            return problem_response(
                401, slug="unauthenticated", detail="Send a bearer token.", headers=challenge
            )
        role = tokens.role_of(token)
        if role is None:
            return problem_response(
                401, slug="unauthenticated", detail="Unknown token.", headers=challenge
            )
        if role not in allowed:
            return problem_response(
                403,
                slug="forbidden",
                detail=f"The {role.value} role may not call this; allowed: "
                + ", ".join(sorted(r.value for r in allowed)),
            )
        request[ROLE] = role
        return await handler(request)

    return middleware
