"""Bearer tokens per role, compared in constant time, checked by one middleware.

Each route in the route table declares the roles it accepts; a route that declares
none is public or authenticated by a Standard Webhooks signature in its handler. The
middleware gives each authenticated request its ``ACTOR`` for the audit log: the role
and the token's fingerprint (``tok_`` and the first 12 hex digits of its SHA-256), which
names the token without revealing it, so that the log tells apart the holders of one
role's tokens (``gateway tokens`` lists the fingerprints of the configured ones).
"""

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway import audit
from gateway.access import ApiRole
from gateway.adapters.problems import problem_response
from gateway.signing import split_secrets

ROLE = web.RequestKey("role", ApiRole)
ACTOR = web.RequestKey("actor", audit.Actor)
FINGERPRINT_PREFIX = "tok_"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _fingerprint(digest: bytes) -> str:
    return FINGERPRINT_PREFIX + digest.hex()[:12]


def token_fingerprint(token: str) -> str:
    """How the audit log names ``token``."""
    return _fingerprint(_digest(token))


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

    def identify(self, token: str) -> tuple[ApiRole, str] | None:
        """The token's role and fingerprint, or None for an unknown token."""
        offered = _digest(token)
        found = None
        for role, digest in self._digests:
            if hmac.compare_digest(offered, digest):
                found = role, _fingerprint(digest)
        return found

    def fingerprints(self) -> list[tuple[ApiRole, str]]:
        """Each configured token's role and fingerprint."""
        return [(role, _fingerprint(digest)) for role, digest in self._digests]


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
        found = tokens.identify(token)
        if found is None:
            return problem_response(
                401, slug="unauthenticated", detail="Unknown token.", headers=challenge
            )
        role, fingerprint = found
        if role not in allowed:
            return problem_response(
                403,
                slug="forbidden",
                detail=f"The {role.value} role may not call this; allowed: "
                + ", ".join(sorted(r.value for r in allowed)),
            )
        request[ROLE] = role
        request[ACTOR] = audit.Actor(role.value, fingerprint)
        return await handler(request)

    return middleware
