"""The route table's vocabulary: each route declares what it accepts, answers and who may call it.

The router, the auth middleware and ``/openapi.json`` are all built from these records.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from contracts.problem import PROBLEM_MEDIA_TYPE, Problem
from gateway.access import ApiRole

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Answer:
    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    security: str | None = None
    request: type[BaseModel] | None = None
    answers: Mapping[int, Answer] = field(default_factory=dict)
    roles: frozenset[ApiRole] = frozenset()


def problem_answer(description: str) -> Answer:
    return Answer(description, Problem, PROBLEM_MEDIA_TYPE)
