"""Persistence of the central system: ``Store.open(url)`` (SQLite default, PostgreSQL by URL)."""

from controller.store.models import (
    ChargePointRow,
    ChargingProfileRow,
    ConnectorRow,
    EventRow,
    IdTagRow,
    MeterValueRow,
    NoResumeRow,
    TransactionRow,
)
from controller.store.store import REBOOT_CLOSED, Store, WriteBatch

__all__ = [
    "REBOOT_CLOSED",
    "ChargePointRow",
    "ChargingProfileRow",
    "ConnectorRow",
    "EventRow",
    "IdTagRow",
    "MeterValueRow",
    "NoResumeRow",
    "Store",
    "TransactionRow",
    "WriteBatch",
]
