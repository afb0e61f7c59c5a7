"""Every column in which the store keeps personal data sealed, the row identity each
value is bound to (its ``row_aad``), and the key that finds the row again.

The store's modules seal and open with these; ``gateway reseal`` walks them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.adapters.sealing import row_aad


@dataclass(frozen=True, slots=True)
class SealedColumn:
    table: str
    column: str
    key: str  # the row's primary key
    identity: tuple[str, ...]  # the columns a value is bound to, in order
    aad_column: str = ""  # the column as the binding names it, when not ``column``

    def aad(self, *identity: str) -> bytes:
        """What a value of this column is bound to, given the row's ``identity``."""
        if len(identity) != len(self.identity):
            raise ValueError(f"{self.table}.{self.column} is bound to {self.identity}")
        return row_aad(self.table, self.aad_column or self.column, "\x00".join(identity))

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


CASES = SealedColumn("cases", "sealed", "case_id", ("case_id",))
REPORTS = SealedColumn("reports", "raw", "id", ("case_id",))
QUARANTINE = SealedColumn("quarantine", "raw", "id", ("id",))
CASE_EVENTS = SealedColumn(
    "case_events", "sealed_details", "id", ("case_id", "recorded_at", "type")
)
OUTBOX = SealedColumn("outbox", "body", "id", ("message_id",))
PARKED = SealedColumn("parked", "body", "id", ("distribution_id", "recipient"))
TIMERS = SealedColumn("timers", "sealed_body", "timer_id", ("timer_id",), aad_column="body")

ALL = (CASES, REPORTS, QUARANTINE, CASE_EVENTS, OUTBOX, PARKED, TIMERS)
