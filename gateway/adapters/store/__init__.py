"""The store: cases, outbox, delivery log, timers, workflow and subscriptions, in SQL
that runs unchanged on SQLite (the embedded default) and PostgreSQL.

What differs between the two is kept in ``gateway.adapters.sql_db``; every driver error
comes out of it as ``StoreUnavailable`` (or ``IntegrityViolation``). Each module of this
package owns the tables of one area; ``SqlStore`` puts them together.
"""

from gateway.adapters.store.audit import AuditSql
from gateway.adapters.store.cases import CaseSql
from gateway.adapters.store.delivery import DeliverySql
from gateway.adapters.store.delivery_log import DeliveryLogSql
from gateway.adapters.store.intake import IntakeSql
from gateway.adapters.store.ops import OpsSql
from gateway.adapters.store.outbox import OutboxSql
from gateway.adapters.store.purge import PurgeSql
from gateway.adapters.store.receipts import ReceiptSql
from gateway.adapters.store.reseal import ResealSql
from gateway.adapters.store.subscriptions import SubscriptionSql
from gateway.adapters.store.timers import TimerSql
from gateway.adapters.store.workflow import WorkflowSql

__all__ = ["SqlStore"]


class SqlStore(
    IntakeSql,
    CaseSql,
    OutboxSql,
    DeliveryLogSql,
    DeliverySql,
    ReceiptSql,
    TimerSql,
    WorkflowSql,
    SubscriptionSql,
    OpsSql,
    AuditSql,
    PurgeSql,
    ResealSql,
):
    """The ``Store`` port on SQLite or PostgreSQL (see ``gateway.adapters.sql_db``).

    Beyond the port, for ops and tests:

    - ``delivery_log(*, case_id=None, distribution_id=None, limit=100)``: delivery
      attempts, newest first, optionally of one case and/or one distribution.
    - ``count_cases()``: how many cases are kept.
    - ``quarantined(limit=100)``: refused inputs, newest first, as dicts with ``id``,
      ``received_at``, ``source``, ``reason``, ``content_type`` and ``errors`` (a list of
      ``{pointer, detail}``); never the raw bytes.
    - ``outbox_lag()``: how many outbox rows are not yet published.
    """
