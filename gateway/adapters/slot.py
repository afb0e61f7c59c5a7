"""A value the application is built with but that exists only once it has started."""

from typing import Generic, TypeVar

from gateway.errors import NotReady

T = TypeVar("T")


class Slot(Generic[T]):
    """Filled at startup; using it before raises ``NotReady`` (answered as 503)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._value: T | None = None

    def bind(self, value: T) -> None:
        self._value = value

    @property
    def value(self) -> T:
        if self._value is None:
            raise NotReady(f"{self._what} is not ready: the gateway is still starting")
        return self._value
