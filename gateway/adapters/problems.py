"""RFC 9457 problem+json answers, and the aiohttp middleware that guarantees them."""

from collections.abc import Awaitable, Callable
from http import HTTPStatus

import structlog
from aiohttp import web

from contracts.problem import PROBLEM_MEDIA_TYPE, FieldError, Problem
from gateway.errors import NotReady

PROBLEM_BASE = "https://github.com/tangerang-kdrt-gateway/problems/"
log = structlog.get_logger(__name__)


def problem_response(
    status: int,
    *,
    slug: str,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> web.Response:
    problem = Problem(
        type=PROBLEM_BASE + slug,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        errors=errors,
    )
    return web.Response(
        status=status,
        body=problem.model_dump_json(exclude_none=True).encode(),
        content_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem+json; an unexpected one is a logged 500 without details."""
    try:
        return await handler(request)
    except NotReady as exc:
        return problem_response(
            503, slug="not-ready", detail=str(exc), headers={"Retry-After": "5"}
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = HTTPStatus(exc.status).phrase.lower().replace(" ", "-")
        return problem_response(
            exc.status,
            slug=slug,
            detail=exc.reason,
            headers={k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}},
        )
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a bare 500
        # the class only: an exception's message may quote personal data from the input
        log.error(
            "unhandled_error",
            path=request.path,
            method=request.method,
            error_class=type(exc).__name__,
        )
        return problem_response(
            500, slug="internal-error", detail="The gateway failed to answer this request."
        )
