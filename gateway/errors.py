"""The gateway's error tree. Lower-level errors are translated into these once, at each boundary.

GatewayError
├── InvalidInput            a request the gateway refuses (→ 4xx problem+json)
│   ├── InvalidReport       the report body is malformed or fails validation (422)
│   ├── SignatureInvalid    missing, bad or stale Standard Webhooks signature (401)
│   └── WebhookReplayed     a correctly signed message taken before (401)
├── NotReady                a dependency (broker, store) is unreachable (503)
│   └── StoreUnavailable    the store cannot make a write durable
│       └── SealedDataUnreadable  sealed personal data under a key not held, or altered
└── DeliveryError           an outbound push did not succeed
    ├── TransientDeliveryError   worth retrying (timeouts, connection errors, 408/425/429/5xx)
    └── PermanentDeliveryError   retrying cannot help (other 4xx)
        └── SubscriptionGone     the recipient answered 410
"""

from contracts.problem import FieldError


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class InvalidInput(GatewayError):
    pass


class InvalidReport(InvalidInput):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class SignatureInvalid(InvalidInput):
    pass


class NotReady(GatewayError):
    pass


class WebhookReplayed(InvalidInput):
    """A correctly signed message (its ``webhook-id`` with its signed timestamp) that was
    taken before. The write that found it wrote nothing."""


class StoreUnavailable(NotReady):
    pass


class SealedDataUnreadable(StoreUnavailable):
    """The message names the key id and the row, never the data."""


class DeliveryError(GatewayError):
    """``error_class`` is a short S0 label for the delivery log (``timeout``, ``http_503``...)."""

    def __init__(
        self, error_class: str, detail: str = "", *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{error_class}: {detail}" if detail else error_class)
        self.error_class = error_class
        self.detail = detail
        self.retry_after_s = retry_after_s


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class SubscriptionGone(PermanentDeliveryError):
    pass
