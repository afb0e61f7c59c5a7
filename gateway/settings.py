"""Typed settings, read from ``GATEWAY_*`` environment variables by the composition root only."""

import json
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///var/gateway.sqlite3"


_MANY = (
    "; space-separated, for rotation or one per person (the audit log names each by its "
    "fingerprint, `gateway tokens`)."
)


class Settings(BaseSettings):
    """Every setting of the gateway. The README's configuration table lists the same."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="RabbitMQ URL (amqp:// or amqps://).",
    )
    database_url: SecretStr = Field(
        SecretStr(DEFAULT_DATABASE_URL),
        description=(
            "Store: sqlite:///relative/path, sqlite:////absolute/path, or "
            "postgresql://user:password@host:port/database (the same schema and migrations)."
        ),
    )
    http_host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port of the HTTP server.")
    namespace: str = Field(
        "gw",
        pattern=r"^[a-z][a-z0-9_-]{0,62}$",
        description="Prefix of every exchange and queue name.",
    )
    c112_url: str | None = Field(
        None,
        description=(
            "Where cases and status reports for 112 are POSTed (needs GATEWAY_C112_SECRET)."
        ),
    )
    c112_secret: SecretStr | None = Field(
        None, description="whsec_ secret signing pushes to 112 and 112's receipts."
    )
    inbound_secret: SecretStr | None = Field(
        None,
        description="whsec_ secret(s) Si Lacak Perak signs with; space-separated for rotation.",
    )
    ops_token: SecretStr | None = Field(None, description=f"Bearer token(s) of the ops role{_MANY}")
    satgas_token: SecretStr | None = Field(
        None, description=f"Bearer token(s) of the Satgas PPA role (SOP steps){_MANY}"
    )
    head_token: SecretStr | None = Field(
        None, description=f"Bearer token(s) of the Kepala UPTD PPA role (SOP steps){_MANY}"
    )
    admin_token: SecretStr | None = Field(
        None, description=f"Bearer token(s) of the admin role (subscriptions){_MANY}"
    )
    sender_id: str = Field(
        "id.go.tangerangkota.dp3ap2kb.uptd-ppa", description="sender_id of every envelope."
    )
    distribution_status: str = Field(
        "actual",
        pattern="^(actual|exercise|test)$",
        description="Envelope status: actual, or exercise for drills.",
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest accepted request body (bytes)."
    )
    push_timeout_s: float = Field(5.0, gt=0, description="Timeout of one outbound POST (seconds).")
    push_attempts: int = Field(
        3, ge=1, le=10, description="Quick in-process attempts before the retry ladder."
    )
    retry_delays_s: list[int] = Field(
        [1, 2, 4, 8, 15, 30, 120, 600],
        description="Retry-ladder steps (seconds): one fixed-TTL queue each, JSON list.",
    )
    prefetch: int = Field(32, ge=1, le=1000, description="Unacked deliveries per consumer.")
    delivery_limit: int = Field(
        10, ge=1, description="Broker redeliveries before a poison message is parked."
    )
    relay_poll_s: float = Field(
        1.0, gt=0, description="Outbox relay fallback poll interval (it is also woken on commit)."
    )
    topology_check_s: float = Field(
        60.0,
        gt=0,
        description=(
            "How often each process declares its broker topology again (seconds), restoring "
            "a queue or binding deleted on the broker; a publish that finds one missing "
            "restores it at once."
        ),
    )
    subscription_sync_s: float = Field(
        5.0,
        gt=0,
        description=(
            "How often each process brings its partner workers in step with the stored "
            "subscriptions (seconds), besides at once when another process announces a "
            "change: a change whose notice the broker lost takes effect here within this; a "
            "partner router's queue deleted on the broker is declared again within this."
        ),
    )
    log_json: bool | None = Field(None, description="Force JSON logs (default: when not a TTY).")
    log_level: str = Field("info", description="debug, info, warning or error.")

    # Security (issue 7): limits and TLS
    body_timeout_s: float = Field(
        10.0, gt=0, description="A request body must arrive within this (seconds), else 408."
    )
    rate_limit_per_s: float = Field(
        20.0, gt=0, description="Requests per second each source IP and each token may make."
    )
    rate_limit_burst: int = Field(
        100, ge=1, description="Requests a source IP or token may make at once before 429."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) the HTTP server serves TLS with."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of GATEWAY_TLS_CERT_FILE.")
    data_keys: SecretStr | None = Field(
        None,
        description=(
            "Keys sealing personal data in the store (required): kid:base64 of 32 bytes, "
            "comma-separated; the first seals, all open (`gateway new-secret --data-key`)."
        ),
    )
    retention_days: int = Field(
        365,
        ge=1,
        description=(
            "Days after a case is closed, cancelled or marked duplicate before "
            "`gateway purge` drops its personal data."
        ),
    )
    purge_interval_s: float = Field(
        3600.0,
        ge=0,
        description=(
            "How often each worker process drops the personal data GATEWAY_RETENTION_DAYS "
            "says is due (seconds; also at start); 0: only `gateway purge` does."
        ),
    )
    # Delivery
    c112_failover_url: str | None = Field(
        None,
        description="Second 112 endpoint: a message at risk (80 % of its deadline) also goes here.",
    )
    breaker_threshold: int = Field(
        5, ge=1, description="Consecutive failed pushes that open a recipient's circuit breaker."
    )
    breaker_first_cool_down_s: float = Field(
        1.0,
        gt=0,
        description=(
            "Seconds a circuit breaker that just opened waits before one probe push; each "
            "failed probe doubles the wait, up to GATEWAY_BREAKER_COOL_DOWN_S."
        ),
    )
    breaker_cool_down_s: float = Field(
        30.0, gt=0, description="The longest wait of an open circuit breaker between probe pushes."
    )
    delivery_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        description="Pushes in flight per recipient, taken earliest deadline first.",
    )

    # SOP workflow
    sla_scale: float = Field(
        1.0,
        gt=0,
        description=(
            "Divides every SOP 357 time standard, for drills and tests; anything but 1 is "
            "logged loudly at start and shown on /readyz."
        ),
    )
    sla_timer_poll_s: float = Field(
        1.0,
        gt=0,
        description=(
            "At most this long between looks for due SLA and delivery timers (seconds); "
            "each timer also fires when it falls due."
        ),
    )

    @field_validator("retry_delays_s")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        if not value or any(d <= 0 for d in value) or value != sorted(value):
            raise ValueError("retry delays must be positive and ascending")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> "Settings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE together")
        return self

    @model_validator(mode="after")
    def _c112_complete(self) -> "Settings":
        # an endpoint the gateway cannot sign for would take nothing, silently
        if self.c112_url and self.c112_secret is None:
            raise ValueError("GATEWAY_C112_URL needs GATEWAY_C112_SECRET to sign its pushes")
        if self.c112_failover_url and not self.c112_url:
            raise ValueError("GATEWAY_C112_FAILOVER_URL is a second GATEWAY_C112_URL: set both")
        return self

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("a sqlite:/// or postgresql:// URL")
        return value

    def sqlite_path(self) -> Path:
        """The SQLite file of a ``sqlite:///`` database URL."""
        prefix = "sqlite:///"
        url = self.database_url.get_secret_value()
        if not url.startswith(prefix):
            raise ValueError(f"not a sqlite URL: {url.split(':', 1)[0]}")
        return Path(url[len(prefix) :])


def settings_table() -> str:
    """The README's configuration table, made from the fields above."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if isinstance(default, SecretStr) and name.endswith("_url"):
            shown = f"`{default.get_secret_value()}`"
        elif isinstance(default, SecretStr) or "secret" in name or "token" in name:
            shown = "(secret)" if default else "unset"
        elif default is None:
            shown = "unset"
        else:
            shown = f"`{json.dumps(default) if isinstance(default, list) else default}`"
        env = f"`GATEWAY_{name.upper()}`"
        rows.append(f"| {env} | {shown} | {info.description or ''} |")
    return "\n".join(rows) + "\n"
