"""Who may call the gateway's API: the roles bearer tokens stand for."""

from enum import StrEnum


class ApiRole(StrEnum):
    SATGAS = "satgas"  # Satgas PPA task force: drives its SOP steps
    HEAD = "head"  # Kepala UPTD PPA: verifies, assigns, takes reports
    OPS = "ops"  # operations staff: delivery log, parking lot, replay
    ADMIN = "admin"  # subscriptions and configuration
