"""The gateway's Prometheus metrics, on the application's registry.

Counters and histograms are fed as things happen: the delivery workers report each
attempt (``attempted``, the ``DeliveryObserver`` port) and the timer service each
round of fired timers (``timers_fired``). Gauges are read from their sources just
before each scrape (``refresh``). Label values are S0 only: recipient ids, outcomes,
queue names, SOP step numbers.

The counters an alert watches for a first increase exist at 0 from the start (every SOP
step; a recipient's outcomes and deadline alerts once ``watch`` names it): a series that
appears only with its first event hides that event from ``increase()``.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway import escalation
from gateway.circuit_breaker import BreakerState
from gateway.model import ESCALATION_OUTCOMES, AttemptOutcome, DeliveryAttempt, Timer
from gateway.workflow import SLA_BREACHED, SLA_WARNING, STANDARDS

log = structlog.get_logger(__name__)

T = TypeVar("T")

SOURCE_TIMEOUT_S = 2.0
CIRCUIT_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEADLINE_MARGIN_BUCKETS_S = (-600, -300, -120, -60, -30, 0, 30, 60, 120, 180, 240, 270, 300)
_ALERTS = {escalation.AT_RISK: "at_risk", escalation.DEADLINE_MISSED: "deadline_missed"}


@dataclass(frozen=True, slots=True)
class OutboxLag:
    unpublished: int
    oldest_at: datetime | None


@dataclass(frozen=True, slots=True)
class GaugeSources:
    """Where the gauges come from, bound at startup by the composition root."""

    queue_depths: Callable[[], Awaitable[Mapping[str, int]]]
    outbox_lag: Callable[[], Awaitable[OutboxLag]]
    circuits: Callable[[], Awaitable[Mapping[str, BreakerState]]]


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry, *, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._sources: GaugeSources | None = None
        self.deliveries = Counter(
            "gateway_deliveries",
            "Delivery attempts by recipient and outcome (delivered, retry, parked, gone).",
            ["recipient", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_delivery_latency_seconds",
            "How long a recipient took to answer one push.",
            ["recipient"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.deadline_margin = Histogram(
            "gateway_delivery_deadline_margin_seconds",
            "Seconds a message with a deadline was delivered before it (negative: late).",
            ["recipient"],
            buckets=DEADLINE_MARGIN_BUCKETS_S,
            registry=registry,
        )
        self.deadline_alerts = Counter(
            "gateway_delivery_deadline_alerts",
            "Messages that reached 80 % of their deadline undelivered (at_risk), or all of it "
            "(deadline_missed).",
            ["recipient", "alert"],
            registry=registry,
        )
        self.sla_warnings = Counter(
            "gateway_sla_warnings",
            "SOP 357 steps still open at 80 % of their time standard, by step.",
            ["step"],
            registry=registry,
        )
        self.sla_breaches = Counter(
            "gateway_sla_breaches",
            "SOP 357 steps still open at their deadline, by step.",
            ["step"],
            registry=registry,
        )
        self.queue_messages = Gauge(
            "gateway_queue_messages",
            "Messages ready in each delivery, retry, parking and partner queue.",
            ["queue"],
            registry=registry,
        )
        self.outbox_lag_messages = Gauge(
            "gateway_outbox_lag_messages",
            "Outbox rows not yet published to the broker.",
            registry=registry,
        )
        self.outbox_lag_seconds = Gauge(
            "gateway_outbox_lag_seconds",
            "Age of the oldest outbox row not yet published (0 when none).",
            registry=registry,
        )
        self.circuit = Gauge(
            "gateway_circuit_state",
            "Each recipient's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["recipient"],
            registry=registry,
        )
        self.source_errors = Counter(
            "gateway_metrics_source_errors",
            "Scrapes at which a gauge's source (broker, store) could not be read.",
            ["source"],
            registry=registry,
        )

        for step in STANDARDS:
            self.sla_warnings.labels(str(step))
            self.sla_breaches.labels(str(step))

    def bind(self, sources: GaugeSources) -> None:
        self._sources = sources

    def watch(self, recipient: str) -> None:
        """Put ``recipient``'s delivery outcomes and deadline alerts at 0 until they
        happen."""
        for outcome in AttemptOutcome:
            if outcome not in ESCALATION_OUTCOMES:
                self.deliveries.labels(recipient, outcome.value)
        for alert in _ALERTS.values():
            self.deadline_alerts.labels(recipient, alert)

    def attempted(self, attempt: DeliveryAttempt, deadline_at: datetime | None) -> None:
        """One push's outcome, latency and, once delivered, its margin to the deadline."""
        if attempt.outcome in ESCALATION_OUTCOMES:
            return
        recipient = attempt.recipient
        self.deliveries.labels(recipient, attempt.outcome.value).inc()
        if attempt.latency_ms is not None:
            self.latency.labels(recipient).observe(attempt.latency_ms / 1000)
        if attempt.outcome is AttemptOutcome.DELIVERED and deadline_at is not None:
            delivered_at = attempt.at.timestamp() + (attempt.latency_ms or 0.0) / 1000
            self.deadline_margin.labels(recipient).observe(deadline_at.timestamp() - delivered_at)

    def timers_fired(self, fired: Sequence[Timer]) -> None:
        """SLA warnings and breaches by step, deadline alerts by recipient (after commit)."""
        for timer in fired:
            if timer.kind == SLA_WARNING:
                self.sla_warnings.labels(timer.data.get("step", "")).inc()
            elif timer.kind == SLA_BREACHED:
                self.sla_breaches.labels(timer.data.get("step", "")).inc()
            elif timer.kind in _ALERTS:
                recipient = timer.data.get("recipient", "")
                self.deadline_alerts.labels(recipient, _ALERTS[timer.kind]).inc()

    async def refresh(self) -> None:
        """Read every gauge from its source; a source that fails (or takes longer than
        ``SOURCE_TIMEOUT_S``) leaves its gauges empty and counts a source error."""
        sources = self._sources
        if sources is None:
            return
        depths = await self._read("broker", sources.queue_depths)
        self.queue_messages.clear()
        for queue, messages in (depths or {}).items():
            self.queue_messages.labels(queue).set(messages)
        lag = await self._read("store", sources.outbox_lag)
        if lag is not None:
            self.outbox_lag_messages.set(lag.unpublished)
            oldest = lag.oldest_at
            age_s = 0.0 if oldest is None else (self._clock() - oldest).total_seconds()
            self.outbox_lag_seconds.set(max(age_s, 0.0))
        circuits = await self._read("workers", sources.circuits)
        self.circuit.clear()
        for recipient, state in (circuits or {}).items():
            self.circuit.labels(recipient).set(CIRCUIT_VALUES[state])

    async def _read(self, source: str, read: Callable[[], Awaitable[T]]) -> T | None:
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT_S):
                return await read()
        except Exception as exc:  # noqa: BLE001 - a scrape answers what it could read
            self.source_errors.labels(source).inc()
            log.warning("metrics.source_failed", source=source, error_class=type(exc).__name__)
            return None
