"""After a controller restart: what each charger was last told, from the store's profile records.

Why: a restarted controller that knew nothing would have to assume every connector at its maximum and pause
every car until each acknowledged a new limit. The store already keeps every profile sent with its answer,
so the last *accepted* live limit of each connector (with when it expires, in our clock: the stored
``valid_until``, not its ``validTo``, which is in the charger's clock) and each charger's fail-safe are
read back; a connector is then known to draw at most that limit until ``validTo``, then its fail-safe.
Only profiles this package sends are read (their ids, ``profiles`` module).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from controller.loadmgmt import profiles as prof
from controller.store.models import ChargingProfileRow


@dataclass(frozen=True)
class SentLimit:
    cp_id: str
    connector_id: int
    limit: float
    unit: str
    valid_to: datetime | None


def _parse(row: ChargingProfileRow) -> SentLimit | None:
    doc: Any = row.profile
    if not isinstance(doc, dict) or row.connector_id is None:
        return None
    try:
        sched = doc["chargingSchedule"]
        limit = float(sched["chargingSchedulePeriod"][0]["limit"])
        unit = str(sched["chargingRateUnit"])
        # Ours, stored beside the profile: its validTo is in the charger's clock. Rows stored before that
        # column existed wrote validTo in our clock.
        valid_to = row.valid_until
        if valid_to is None and doc.get("validTo"):
            valid_to = datetime.fromisoformat(doc["validTo"].replace("Z", "+00:00"))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return SentLimit(row.cp_id, row.connector_id, limit, unit, valid_to)


def _newest(store: Any, *conditions: Any) -> list[ChargingProfileRow]:
    newest = (
        select(func.max(ChargingProfileRow.id))
        .where(ChargingProfileRow.action == "SetChargingProfile", ChargingProfileRow.status == "Accepted", *conditions)
        .group_by(ChargingProfileRow.cp_id, ChargingProfileRow.connector_id)
    )
    with store.session() as s:
        return list(s.scalars(select(ChargingProfileRow).where(ChargingProfileRow.id.in_(newest))))


def last_accepted(store: Any) -> tuple[list[SentLimit], list[SentLimit]]:
    """The newest accepted live limit per connector, and the newest accepted fail-safe per charger."""
    live = _newest(store, ChargingProfileRow.connector_id >= 1, ChargingProfileRow.reason.like("load management:%"))
    safe = _newest(
        store, ChargingProfileRow.connector_id == 0, ChargingProfileRow.reason.like("load management: fail-safe%")
    )

    def ours(rows: list[ChargingProfileRow], ids: tuple[int, ...]) -> list[SentLimit]:
        out = []
        for row in rows:
            doc = row.profile if isinstance(row.profile, dict) else {}
            if doc.get("chargingProfileId") in ids and (sent := _parse(row)) is not None:
                out.append(sent)
        return out

    live_ids = tuple(range(prof.LIVE_PROFILE_ID0 + 1, prof.LIVE_PROFILE_ID0 + 17))
    return ours(live, live_ids), ours(safe, (prof.FAIL_SAFE_PROFILE_ID,))
