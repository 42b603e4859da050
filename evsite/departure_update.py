"""A departure time (and optionally the energy wanted) set for one charging session through the bus.

Why: OCPP 1.6 carries no departure time, yet deadline-aware allocation needs one. An operator tool or a
driver app publishes this on ``topics.LOADMGMT_DEPARTURE``; load management uses it for that transaction
instead of its estimate. In the base because the producers (API, CLI) and the consumer (controller) differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DepartureUpdate:
    cp_id: str
    transaction_id: int
    departure_at: datetime
    energy_kwh: float | None = None
    who: str = "unknown"
