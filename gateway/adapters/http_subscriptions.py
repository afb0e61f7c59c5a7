"""Partner subscriptions (admin role) and the AsyncAPI document of every topic.

POST   /v1/subscriptions                        create (201; a webhook secret shown once)
GET    /v1/subscriptions                        list (secrets never in full)
GET    /v1/subscriptions/{subscription_id}      one
POST   /v1/subscriptions/{subscription_id}/pause
POST   /v1/subscriptions/{subscription_id}/resume
POST   /v1/subscriptions/{subscription_id}/secret   a new webhook secret (shown once)
DELETE /v1/subscriptions/{subscription_id}
GET    /asyncapi.json                           public
"""

from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

import structlog
from aiohttp import web
from pydantic import ValidationError

from contracts.problem import FieldError
from contracts.subscription import (
    NewSecret,
    NewSubscription,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionView,
)
from gateway.access import ApiRole
from gateway.adapters.asyncapi import asyncapi_document
from gateway.adapters.auth import ACTOR
from gateway.adapters.problems import problem_response
from gateway.adapters.request_body import (
    BodyRefused,
    parse_json,
    read_json_bytes,
    refused_problem,
)
from gateway.adapters.routes import Answer, Route, problem_answer
from gateway.adapters.slot import Slot
from gateway.audit import Actor
from gateway.partners import Subscription
from gateway.subscriptions import (
    InvalidSubscription,
    SubscriptionConflict,
    SubscriptionNotFound,
    SubscriptionService,
)

log = structlog.get_logger(__name__)

ADMIN = frozenset({ApiRole.ADMIN})
MAX_SUBSCRIPTION_BYTES = 16 * 1024
_UNION_TAGS = frozenset({"webhook", "amqp"})


SUBSCRIPTIONS = web.AppKey("subscriptions", Slot[SubscriptionService])


def _json(model: SubscriptionView | SubscriptionList, status: int = 200) -> web.Response:
    return web.json_response(
        model.model_dump(mode="json", exclude_none=True),
        status=status,
    )


def _pointer(loc: Sequence[int | str]) -> str:
    parts = [
        str(part)
        for i, part in enumerate(loc)
        if not (i > 0 and loc[i - 1] == "delivery" and part in _UNION_TAGS)
    ]
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _invalid(errors: list[FieldError]) -> web.Response:
    return problem_response(
        422,
        slug="invalid-subscription",
        detail="The subscription has invalid fields.",
        errors=errors,
    )


_Body = TypeVar("_Body", NewSubscription, NewSecret)


async def _body(request: web.Request, contract: type[_Body]) -> _Body | web.Response:
    """The request's body as ``contract``, or the problem answer refusing it."""
    try:
        raw = await read_json_bytes(request, MAX_SUBSCRIPTION_BYTES)
        body = parse_json(raw)
    except BodyRefused as refused:
        return refused_problem(refused)
    try:
        return contract.model_validate(body)
    except ValidationError as exc:
        return _invalid(
            [
                FieldError(pointer=_pointer(e["loc"]), detail=e["msg"])
                for e in exc.errors(include_url=False, include_input=False)
            ]
        )


async def post_subscription(request: web.Request) -> web.Response:
    service = request.app[SUBSCRIPTIONS].value
    new = await _body(request, NewSubscription)
    if isinstance(new, web.Response):
        return new
    try:
        subscription, secret = await service.create(new, by=request[ACTOR])
    except InvalidSubscription as exc:
        return _invalid(exc.errors)
    except SubscriptionConflict as exc:
        return problem_response(409, slug="subscription-conflict", detail=str(exc))
    log.info(
        "subscription.created",
        subscription_id=subscription.subscription_id,
        agency_id=subscription.agency_id,
        role=subscription.role.value,
        mode=subscription.mode.value,
    )
    created = SubscriptionCreated(**service.view(subscription).model_dump(), secret=secret)
    response = _json(created, status=201)
    response.headers["Location"] = f"/v1/subscriptions/{subscription.subscription_id}"
    return response


async def post_secret(request: web.Request) -> web.Response:
    service = request.app[SUBSCRIPTIONS].value
    subscription_id = request.match_info["subscription_id"]
    new = await _body(request, NewSecret)
    if isinstance(new, web.Response):
        return new
    try:
        subscription, secret = await service.rotate_secret(subscription_id, new, by=request[ACTOR])
    except SubscriptionNotFound:
        return problem_response(
            404, slug="subscription-not-found", detail=f"No subscription {subscription_id}."
        )
    except SubscriptionConflict as exc:
        return problem_response(409, slug="subscription-conflict", detail=str(exc))
    log.info(
        "subscription.secret_rotated",
        subscription_id=subscription_id,
        previous_valid_s=new.previous_valid_s,
    )
    answer = SubscriptionCreated(**service.view(subscription).model_dump(), secret=secret)
    return _json(answer)


async def list_subscriptions(request: web.Request) -> web.Response:
    service = request.app[SUBSCRIPTIONS].value
    views = [service.view(s) for s in await service.list()]
    return _json(SubscriptionList(subscriptions=views))


Action = Callable[[SubscriptionService, str, Actor], Awaitable[Subscription]]


async def _on_one(request: web.Request, action: Action, event: str | None) -> web.Response:
    """Apply ``action`` to the subscription the path names; answer it as it is then."""
    service = request.app[SUBSCRIPTIONS].value
    subscription_id = request.match_info["subscription_id"]
    try:
        subscription = await action(service, subscription_id, request[ACTOR])
    except SubscriptionNotFound:
        return problem_response(
            404, slug="subscription-not-found", detail=f"No subscription {subscription_id}."
        )
    except SubscriptionConflict as exc:
        return problem_response(409, slug="subscription-conflict", detail=str(exc))
    if event is not None:
        log.info(event, subscription_id=subscription_id)
    return _json(service.view(subscription))


async def get_subscription(request: web.Request) -> web.Response:
    return await _on_one(request, lambda service, one, _: service.get(one), None)


async def pause_subscription(request: web.Request) -> web.Response:
    return await _on_one(
        request, lambda service, one, by: service.pause(one, by=by), "subscription.paused"
    )


async def resume_subscription(request: web.Request) -> web.Response:
    return await _on_one(
        request, lambda service, one, by: service.resume(one, by=by), "subscription.resumed"
    )


async def delete_subscription(request: web.Request) -> web.Response:
    answer = await _on_one(
        request, lambda service, one, by: service.delete(one, by=by), "subscription.deleted"
    )
    return web.Response(status=204) if answer.status == 200 else answer


@lru_cache(maxsize=1)
def _asyncapi() -> dict[str, Any]:
    return asyncapi_document()


async def get_asyncapi(request: web.Request) -> web.Response:
    return web.json_response(_asyncapi())


_ONE = "/v1/subscriptions/{subscription_id}"
_AUTH = {
    401: problem_answer("Missing or unknown bearer token."),
    403: problem_answer("The token's role is not admin."),
}
_BROKER = {503: problem_answer("The broker is not reachable; try again.")}
_BODY = {
    400: problem_answer("The body is not UTF-8 JSON."),
    408: problem_answer("The body did not arrive in time."),
    413: problem_answer("The body is too large."),
    415: problem_answer("The body is not application/json."),
}

SUBSCRIPTION_ROUTES: Sequence[Route] = (
    Route(
        "POST",
        "/v1/subscriptions",
        post_subscription,
        "createSubscription",
        "Subscribe a partner agency to case topics, redacted for its role.",
        request=NewSubscription,
        roles=ADMIN,
        answers={
            201: Answer(
                "Created; a webhook subscription's secret is in this answer only.",
                SubscriptionCreated,
            ),
            **_AUTH,
            **_BODY,
            409: problem_answer("The agency already has an AMQP subscription."),
            422: problem_answer("Invalid fields, each named by its JSON pointer."),
            **_BROKER,
        },
    ),
    Route(
        "GET",
        "/v1/subscriptions",
        list_subscriptions,
        "listSubscriptions",
        "Every subscription; webhook secrets only as their last characters.",
        roles=ADMIN,
        answers={200: Answer("The subscriptions.", SubscriptionList), **_AUTH},
    ),
    Route(
        "GET",
        _ONE,
        get_subscription,
        "getSubscription",
        "One subscription.",
        roles=ADMIN,
        answers={
            200: Answer("The subscription.", SubscriptionView),
            **_AUTH,
            404: problem_answer("No such subscription."),
        },
    ),
    Route(
        "POST",
        _ONE + "/pause",
        pause_subscription,
        "pauseSubscription",
        "Stop delivering a webhook subscription; its queue keeps filling.",
        roles=ADMIN,
        answers={
            200: Answer("Paused.", SubscriptionView),
            **_AUTH,
            404: problem_answer("No such subscription."),
            409: problem_answer("An AMQP subscription is read by the agency and cannot pause."),
            **_BROKER,
        },
    ),
    Route(
        "POST",
        _ONE + "/resume",
        resume_subscription,
        "resumeSubscription",
        "Deliver again, starting with what queued while paused.",
        roles=ADMIN,
        answers={
            200: Answer("Active.", SubscriptionView),
            **_AUTH,
            404: problem_answer("No such subscription."),
            **_BROKER,
        },
    ),
    Route(
        "POST",
        _ONE + "/secret",
        post_secret,
        "rotateSubscriptionSecret",
        "Sign a webhook subscription's pushes with a new secret, and with the one it "
        "replaces as well for previous_valid_s.",
        request=NewSecret,
        roles=ADMIN,
        answers={
            200: Answer("The new secret; it is in this answer only.", SubscriptionCreated),
            **_AUTH,
            **_BODY,
            404: problem_answer("No such subscription."),
            409: problem_answer(
                "An AMQP subscription has no secret, or the secret given is the one in force."
            ),
            422: problem_answer("Invalid fields, each named by its JSON pointer."),
        },
    ),
    Route(
        "DELETE",
        _ONE,
        delete_subscription,
        "deleteSubscription",
        "Stop routing to the subscription and delete its queue with what it holds.",
        roles=ADMIN,
        answers={
            204: Answer("Deleted."),
            **_AUTH,
            404: problem_answer("No such subscription."),
            **_BROKER,
        },
    ),
    Route(
        "GET",
        "/asyncapi.json",
        get_asyncapi,
        "getAsyncApi",
        "AsyncAPI 3.0 document of every topic, queue and payload.",
        answers={200: Answer("AsyncAPI 3.0 document.")},
        public=True,
    ),
)
