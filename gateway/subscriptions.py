"""The subscriptions service: create, list, pause, resume and delete partner subscriptions,
give a webhook subscription a new secret, and mark one gone when its partner answers 410.

It talks to the store and the broker only through the ``SubscriptionStore`` and
``PartnerChannels`` ports. A subscription's queue is declared before the subscription
is stored, so the router never routes to a queue that does not exist yet. Every change,
once stored and applied in this process, is told to ``changed`` (the other processes
apply it from the store).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.problem import FieldError
from contracts.subscription import (
    DeliveryMode,
    DeliveryView,
    NewSecret,
    NewSubscription,
    SubscriptionStatus,
    SubscriptionView,
    WebhookDelivery,
)
from gateway import audit, topics
from gateway.errors import GatewayError, InvalidInput
from gateway.partners import Subscription
from gateway.ports import PartnerChannels, SubscriptionStore


class InvalidSubscription(InvalidInput):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class SubscriptionConflict(InvalidInput):
    """The request contradicts the subscription's state or another subscription (409)."""


class SubscriptionNotFound(GatewayError):
    pass


def _unheard() -> None:
    return None


@dataclass(frozen=True, slots=True)
class SubscriptionService:
    store: SubscriptionStore
    channels: PartnerChannels
    clock: Callable[[], datetime]
    new_id: Callable[[], str]
    new_secret: Callable[[], str]
    changed: Callable[[], None] = _unheard

    async def create(
        self, request: NewSubscription, *, by: audit.Actor
    ) -> tuple[Subscription, str | None]:
        """The new subscription and, for a webhook, its secret (shown this once). ``by``
        (here and below) is who asks, for the audit log."""
        errors = [
            FieldError(pointer=f"/patterns/{i}", detail=str(exc))
            for i, pattern in enumerate(request.patterns)
            for exc in _pattern_error(pattern)
        ]
        if errors:
            raise InvalidSubscription(errors)
        delivery = request.delivery
        if delivery.mode is DeliveryMode.AMQP:
            for other in await self.store.subscriptions():
                if other.agency_id == request.agency_id and other.mode is DeliveryMode.AMQP:
                    raise SubscriptionConflict(
                        f"agency {request.agency_id} already has an AMQP subscription "
                        f"({other.subscription_id}); its queue is one per agency"
                    )
        now = self.clock()
        secret = None
        url = None
        if isinstance(delivery, WebhookDelivery):
            url, secret = delivery.url, delivery.secret or self.new_secret()
        subscription = Subscription(
            subscription_id=self.new_id(),
            agency_id=request.agency_id,
            role=request.role,
            patterns=tuple(dict.fromkeys(request.patterns)),
            mode=delivery.mode,
            status=SubscriptionStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            url=url,
            secret=secret,
        )
        await self.channels.open(subscription)
        try:
            await self.store.add_subscription(subscription, by=by)
        except BaseException:
            await self.channels.close(subscription, await self.store.subscriptions())
            raise
        self.changed()
        return subscription, secret

    async def list(self) -> list[Subscription]:
        return await self.store.subscriptions()

    async def get(self, subscription_id: str) -> Subscription:
        subscription = await self.store.subscription(subscription_id)
        if subscription is None:
            raise SubscriptionNotFound(subscription_id)
        return subscription

    async def pause(self, subscription_id: str, *, by: audit.Actor) -> Subscription:
        """Stop delivering a webhook subscription; its queue keeps filling."""
        subscription = await self.get(subscription_id)
        if subscription.mode is DeliveryMode.AMQP:
            raise SubscriptionConflict(
                "an AMQP subscription is read by the agency itself; the gateway cannot "
                "pause it (revoke the agency's broker user to stop it reading)"
            )
        if not subscription.active:
            return subscription
        changed = await self._set(subscription_id, SubscriptionStatus.PAUSED, by)
        await self.channels.pause(changed)
        self.changed()
        return changed

    async def gone(self, subscription_id: str) -> Subscription | None:
        """The partner's endpoint answered 410 Gone: stop delivering in every process
        until an admin resumes it. A subscription paused or deleted meanwhile is left as
        it is; answers it as it is now, ``None`` when deleted."""
        now = await self.store.set_subscription_status(
            subscription_id,
            SubscriptionStatus.GONE,
            self.clock(),
            by=audit.SYSTEM,
            only_from=SubscriptionStatus.ACTIVE,
        )
        if now is not None and now.status is SubscriptionStatus.GONE:
            self.changed()
        return now

    async def resume(self, subscription_id: str, *, by: audit.Actor) -> Subscription:
        """Deliver again, starting with everything that queued while paused or gone."""
        subscription = await self.get(subscription_id)
        if subscription.active:
            return subscription
        changed = await self._set(subscription_id, SubscriptionStatus.ACTIVE, by)
        await self.channels.resume(changed)
        self.changed()
        return changed

    async def rotate_secret(
        self, subscription_id: str, request: NewSecret, *, by: audit.Actor
    ) -> tuple[Subscription, str]:
        """Sign with a new secret from now on, and with the one it replaces as well for
        ``previous_valid_s``; answers the subscription and its new secret (shown once)."""
        subscription = await self.get(subscription_id)
        if subscription.mode is DeliveryMode.AMQP:
            raise SubscriptionConflict(
                "an AMQP subscription has no secret; the agency reads its queue with its "
                "own broker user"
            )
        secret = request.secret or self.new_secret()
        if secret == subscription.secret:
            raise SubscriptionConflict("the new secret is the one in force")
        now = self.clock()
        rotated = await self.store.rotate_subscription_secret(
            subscription_id,
            secret,
            now + timedelta(seconds=request.previous_valid_s),
            now,
            by=by,
        )
        if rotated is None:
            raise SubscriptionNotFound(subscription_id)
        await self.channels.rekey(rotated)
        self.changed()
        return rotated, secret

    async def delete(self, subscription_id: str, *, by: audit.Actor) -> Subscription:
        """Stop routing and delivering, and delete its queue with what it holds; answers
        the subscription as it was."""
        subscription = await self.get(subscription_id)
        await self.store.remove_subscription(subscription_id, by=by)
        await self.channels.close(subscription, await self.store.subscriptions())
        self.changed()
        return subscription

    async def restore(self) -> None:
        """Declare and start every stored subscription (at start and broker return)."""
        for subscription in await self.store.subscriptions():
            await self.channels.open(subscription)

    def view(self, subscription: Subscription) -> SubscriptionView:
        return SubscriptionView(
            subscription_id=subscription.subscription_id,
            agency_id=subscription.agency_id,
            role=subscription.role,
            patterns=list(subscription.patterns),
            delivery=DeliveryView(
                mode=subscription.mode,
                url=subscription.url,
                secret_hint=subscription.secret_hint,
                previous_secret_until=subscription.previous_valid_until(self.clock()),
                queue=self.channels.queue_of(subscription),
            ),
            status=subscription.status,
            created_at=subscription.created_at,
            updated_at=subscription.updated_at,
        )

    async def _set(
        self, subscription_id: str, status: SubscriptionStatus, by: audit.Actor
    ) -> Subscription:
        changed = await self.store.set_subscription_status(
            subscription_id, status, self.clock(), by=by
        )
        if changed is None:
            raise SubscriptionNotFound(subscription_id)
        return changed


def _pattern_error(pattern: str) -> list[topics.InvalidPattern]:
    try:
        topics.check_pattern(pattern)
    except topics.InvalidPattern as exc:
        return [exc]
    return []
