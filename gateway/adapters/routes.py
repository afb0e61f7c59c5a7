"""The route table's vocabulary: each route declares what it accepts, answers and who may call it.

Who may call it is one of: ``roles`` (bearer tokens, checked by the auth middleware),
``security`` (a signature scheme its handler verifies), or ``public=True``.

The router, the auth middleware and ``/openapi.json`` are all built from these records.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    also: tuple[str, ...] = ()  # text media types the same answer comes in by Accept


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query (or header) parameter a route reads; path parameters come from its path."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    where: str = "query"


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
    public: bool = False
    parameters: tuple[Parameter, ...] = ()

    @property
    def access_declared(self) -> bool:
        """Whether the route says who may call it: roles, a signature scheme, or public."""
        return bool(self.roles) or self.security is not None or self.public


def problem_answer(description: str) -> Answer:
    return Answer(description, Problem, PROBLEM_MEDIA_TYPE)
