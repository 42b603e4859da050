"""Time-of-use tiers for load management: which tier is in force, when the next one starts, and the hold.

Why here and not in ``planning.tariff``: planning reads a tariff as 24 prices per day for a study; the live
loop needs the tier *now* in the site's zone, the wall-clock hours where it can change (for the clockwork's
``CronTrigger``, so DST is APScheduler's arithmetic, not ours), and what a tier means for each car.

A tier is a price level within its day: the day's cheapest price is "off-peak" (``cheap``), its dearest
"peak", anything between "mid-peak", and a day with one price is "flat" (cheap). Seasonal tariff blocks
(``[tariff] tier_starts``) change the prices at local midnight, so midnight is always a boundary.

The hold (``[site] tariff_hold``): outside the cheap tier a car whose departure and requested energy are
known is held to the constant current that still delivers its remaining energy by ``departure_margin_min``
before its departure, never below the J1772 minimum (a tariff never pauses a car: some do not resume) and
never above what it could take anyway. Cars whose energy or departure is unknown are not held (nothing says
their deadline allows it), nor is one already too late at full current. Cheap tiers get full headroom, so
what was held back is delivered when energy is cheap, and the hold itself already meets the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from evsite.site_state import TariffTier
from planning.allocation.model import FloatArray, Sessions
from planning.errors import PlanningError
from planning.tariff import Tariff

#: Prices within this many cents/kWh are the same tier.
_SAME_CENTS = 1e-6


def boundary_hours(tariff: Tariff) -> list[int]:
    """Local hours at which some rule's price changes from the hour before (midnight always: seasons, days)."""
    hours = {0}
    for rule in tariff.rules:
        cents = np.asarray(rule.cents, float)
        hours.update(int(h) for h in np.flatnonzero(np.abs(np.diff(cents)) > _SAME_CENTS) + 1)
    return sorted(hours)


def _tier_name(price: float, day: np.ndarray) -> tuple[str, bool]:
    lo, hi = float(day.min()), float(day.max())
    if hi - lo <= _SAME_CENTS:
        return "flat", True
    if price <= lo + _SAME_CENTS:
        return "off-peak", True
    if price >= hi - _SAME_CENTS:
        return "peak", False
    return "mid-peak", False


@dataclass(frozen=True)
class TierCalendar:
    """A tariff read in the site's time zone."""

    tariff: Tariff
    tz: str

    def tier_at(self, at: datetime) -> TariffTier:
        """The tier in force at ``at`` (its local hour's price). Raises ``PlanningError`` for a day with no price."""
        local = at.astimezone(ZoneInfo(self.tz))
        day = self.tariff.hourly_prices(pd.DatetimeIndex([pd.Timestamp(local.date())]))[0]
        price = float(day[local.hour])
        name, cheap = _tier_name(price, day)
        start = local.replace(minute=0, second=0, microsecond=0)
        while start.hour > 0 and abs(day[start.hour - 1] - price) <= _SAME_CENTS:
            start -= timedelta(hours=1)
        return TariffTier(name, round(price, 4), cheap, start.astimezone(at.tzinfo), self.tariff.name)

    def cron_hours(self) -> str:
        """The ``hour`` field of the clockwork's ``CronTrigger`` (e.g. ``"0,8"``)."""
        return ",".join(str(h) for h in boundary_hours(self.tariff))


def deadline_hold_a(s: Sessions, margin_s: float) -> FloatArray:
    """Per connector, the current its deadline needs now (NaN: not held; see the module docstring).

    ``s`` is a snapshot's sessions (departures in seconds from now). Only active, controllable connectors
    with a known request and departure are held, and only when the hold is below their maximum.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        left_h = (s.departure_s - margin_s) / 3600.0
        need_a = s.remaining_kwh / (left_h * s.kw_per_a)
    hold = np.maximum(need_a, np.minimum(s.min_a, s.max_a))
    ok = s.active & np.isnan(s.fixed_a) & np.isfinite(need_a) & (left_h > 0) & (s.remaining_kwh > 0)
    ok &= hold < s.max_a - 1e-9
    return np.where(ok, hold, np.nan)


def hold_reason(tier: TariffTier, limit_a: float, departure: datetime, tz: str) -> str:
    """The reason of a limit the tier decided (named so an operator sees why a car charges slowly)."""
    local = departure.astimezone(ZoneInfo(tz))
    return (
        f"tariff {tier.label}: held to {limit_a:.1f} A, what its departure at {local:%H:%M} needs "
        f"(cheaper hours get full headroom)"
    )


def tier_or_none(calendar: TierCalendar | None, at: datetime) -> tuple[TariffTier | None, str | None]:
    """The tier at ``at`` or, when the tariff has no price that day, None and why."""
    if calendar is None:
        return None, None
    try:
        return calendar.tier_at(at), None
    except PlanningError as err:
        return None, str(err)
