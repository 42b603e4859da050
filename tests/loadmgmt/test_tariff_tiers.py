"""Time-of-use tiers: they switch at local boundaries across DST on the shared clock, and hold cars by deadline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from controller import events as ev
from controller.loadmgmt.clockwork import Clockwork, run_trigger
from controller.loadmgmt.tariff_tiers import boundary_hours, deadline_hold_a
from evsite import topics
from evsite.clock import ManualClock
from evsite.config import Config, TariffConfig
from evsite.departure_update import DepartureUpdate
from evsite.meter_reading import MeterReading
from planning.allocation.model import Sessions
from planning.allocation.policies import allocate
from planning.tariff import tiered_tariff
from tests.loadmgmt.helpers import load_manager, site_config

# 00-07 off-peak 5 c, 07-16 mid-peak 20 c, 16-19 peak 40 c, 19-24 mid-peak 20 c (every day of the year).
PRICES = [5.0] * 7 + [20.0] * 9 + [40.0] * 3 + [20.0] * 5


def _config(tmp_path: Path, site: str) -> Config:
    return site_config(tmp_path, site).model_copy(
        update={"tariff": TariffConfig(tier_starts=["01-01"], business=[PRICES])}
    )


def test_boundaries_are_the_hours_where_a_price_changes() -> None:
    assert boundary_hours(tiered_tariff(["01-01"], [PRICES])) == [0, 7, 16, 19]


async def test_tiers_switch_at_local_boundaries_across_the_london_dst_change(tmp_path: Path) -> None:
    # Saturday 28 March 2026 05:00 UTC (GMT); BST starts on Sunday 29 March at 01:00 UTC.
    clock = ManualClock(datetime(2026, 3, 28, 5, 0, tzinfo=UTC))
    cfg = _config(tmp_path, 'timezone = "Europe/London"')
    lm, store = load_manager(cfg, clock)
    sub = lm.bus.subscribe(topics.LOADMGMT_TARIFF)
    lm.switch_tier(clock.now())  # what run() does at start: off-peak at 05:00 GMT
    cw = Clockwork(lm, clock)
    assert cw.tier is not None
    task = asyncio.create_task(run_trigger(clock, cw.tier, cw._tier, "tariff"))
    await asyncio.sleep(0)
    await clock.advance(44 * 3600)  # to Monday 01:00 UTC, in no wall time
    task.cancel()
    seen = []
    while (item := sub.get_nowait()) is not None:
        tier = item[1]
        seen.append((tier.since.astimezone(UTC).strftime("%d %H:%M"), tier.name, tier.cents_per_kwh))
    assert seen == [
        ("28 00:00", "off-peak", 5.0),
        ("28 07:00", "mid-peak", 20.0),  # GMT: local = UTC
        ("28 16:00", "peak", 40.0),
        ("28 19:00", "mid-peak", 20.0),
        ("29 00:00", "off-peak", 5.0),
        ("29 06:00", "mid-peak", 20.0),  # BST: 07:00 local is 06:00 UTC
        ("29 15:00", "peak", 40.0),
        ("29 18:00", "mid-peak", 20.0),
        ("29 23:00", "off-peak", 5.0),  # Monday 00:00 BST
    ]
    assert lm.site_state().tariff_tier == "off-peak 5 c/kWh"
    store.close()


async def test_tiers_follow_los_angeles_when_dst_ends(tmp_path: Path) -> None:
    # PDT ends on Sunday 1 November 2026 at 09:00 UTC (02:00 PDT -> 01:00 PST).
    clock = ManualClock(datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    cfg = _config(tmp_path, 'timezone = "America/Los_Angeles"')
    lm, store = load_manager(cfg, clock)
    fired: list[datetime] = []
    cw = Clockwork(lm, clock)
    assert cw.tier is not None
    task = asyncio.create_task(run_trigger(clock, cw.tier, fired.append, "tariff"))
    await asyncio.sleep(0)
    await clock.advance(36 * 3600)
    task.cancel()
    local = [f"{f.astimezone(ZoneInfo('America/Los_Angeles')):%d %H:%M %Z}" for f in fired]
    utc = [f.astimezone(UTC).strftime("%d %H:%M") for f in fired]
    assert local == ["31 19:00 PDT", "01 00:00 PDT", "01 07:00 PST", "01 16:00 PST", "01 19:00 PST", "02 00:00 PST"]
    assert utc == ["01 02:00", "01 07:00", "01 15:00", "02 00:00", "02 03:00", "02 08:00"]
    store.close()


def test_the_hold_is_what_the_deadline_needs_never_below_the_minimum() -> None:
    s = Sessions.empty(4, max_a=32.0, kw_per_a=0.69)  # 230 V x 3 phases
    s.active[:] = True
    s.departure_s[:] = [4.5 * 3600, 4.5 * 3600, np.nan, 0.25 * 3600]
    s.energy_requested_kwh[:] = [27.6, 2.0, 10.0, 10.0]
    hold = deadline_hold_a(s, margin_s=1800.0)
    # 27.6 kWh in 4 h at 0.69 kW/A: 10 A; 2 kWh would need 0.7 A: the 6 A minimum instead of a pause.
    assert np.allclose(hold[:2], [10.0, 6.0])
    assert np.isnan(hold[2])  # departure unknown: not held
    assert np.isnan(hold[3])  # already too late at full current: not held


async def test_an_expensive_tier_holds_a_car_to_its_deadline_and_the_reason_names_the_tier(tmp_path: Path) -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # Monday 12:00 UTC: mid-peak
    clock = ManualClock(now)
    cfg = _config(tmp_path, "building_peak_kw = 5\nreserve_kw = 0\nmin_real_s = 0")
    lm, store = load_manager(cfg, clock)
    lm.handle("ocpp/connection", ev.ConnectionEvent("CP1", True, now))
    for c in (1, 2):
        lm.handle("ocpp/status", ev.StatusEvent("CP1", c, "Charging", "NoError", now))
        lm.handle("ocpp/transaction", ev.TransactionEvent("CP1", c, c, "started", "TAG", 0, now))
        lm.tracks[("CP1", c)].set_limit(10.0, now, now + timedelta(seconds=120), "test")
    lm.handle("meter/site", MeterReading(now, 5.0))
    # Connector 1: 27.6 kWh by 16:30 (4 h after the 30-minute margin); connector 2 says nothing.
    lm.handle("loadmgmt/departure", DepartureUpdate("CP1", 1, now + timedelta(hours=4.5), 27.6, "driver app"))

    def limits() -> tuple[np.ndarray, list[str]]:
        snap, _, _ = lm.snapshot(clock.now())
        alloc = allocate(snap, "equal")
        return alloc.limit_a, lm._tier_reasons(alloc.limit_a, alloc.reasons, snap, clock.now())

    lm.switch_tier(now)
    assert lm.tier is not None and lm.tier.name == "mid-peak"
    limit, reasons = limits()
    assert abs(limit[0] - 10.0) < 0.11 and limit[1] > 30.0
    assert reasons[0].startswith("tariff mid-peak 20 c/kWh: held to 10.0 A") and "16:30" in reasons[0]
    assert "tariff" not in reasons[1]
    lm.switch_tier(datetime(2026, 3, 3, 3, 0, tzinfo=UTC))  # off-peak: full headroom
    limit, reasons = limits()
    assert limit[0] > 30.0 and not any("tariff" in r for r in reasons)
    store.close()
