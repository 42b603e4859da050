"""The daily re-plan from the stored building meter, on the accelerated (manual) clock, and the real-second floor."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller import events as ev
from controller.loadmgmt.clockwork import Clockwork, run_trigger
from controller.loadmgmt.meter_history import LoadBuckets, read_history
from controller.loadmgmt.plan_schedule import live_path
from controller.loadmgmt.site_model import continuous_limit_kw
from controller.store import Store
from evsite.clock import ManualClock
from evsite.meter_reading import MeterReading
from tests.loadmgmt.helpers import load_manager, site_config

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
STUDY_KW = 30.0


def _plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan-out" / "plan.json"
    path.parent.mkdir()
    days = {"weekday": [STUDY_KW] * 24, "weekend": [STUDY_KW] * 24}
    path.write_text(json.dumps({"buildings": [{"name": "b", "ev_ceiling_kw": {"tz": "UTC", "by_day_type": days},
                                               "max_demand": {"kw": 25.0}}]}))  # fmt: skip
    return path


def _building_kw(t: datetime, base: float) -> float:
    """The generated building: ``base`` kW, 40 kW from 14:00 to 15:00 on weekdays."""
    return 40.0 if t.weekday() < 5 and t.hour == 14 else base


async def _run_days(tmp_path: Path, days: int, base_kw: float, site: str = ""):
    plan = _plan(tmp_path)
    cfg = site_config(tmp_path, f'plan = "{plan}"\ntimezone = "UTC"\nreserve_kw = 0\n{site}')
    clock = ManualClock(START)
    lm, store = load_manager(cfg, clock)
    cw = Clockwork(lm, clock)
    cron = asyncio.create_task(run_trigger(clock, cw.replan, cw._replan, "replan"))
    await asyncio.sleep(0)
    for _ in range(days * 24 * 12):  # a reading every 5 simulated minutes
        await clock.advance(300)
        lm.handle("meter/site", MeterReading(clock.now(), _building_kw(clock.now(), base_kw)))
        if lm.replanner.task is not None and not lm.replanner.task.done():
            # A re-plan takes well under 5 simulated minutes live; the manual clock would outrun its thread.
            await lm.replanner.task
    cron.cancel()
    if lm.replanner.task is not None:
        await lm.replanner.task  # the cron's last re-plan (it read the history as it was then)
    await lm.csms.db.run(lambda: None)  # every 15-minute row written
    lm.replan("test")
    assert lm.replanner.task is not None
    result = await lm.replanner.task
    return lm, store, plan, result, cfg


async def test_short_history_lowers_the_study_ceiling_where_the_building_grew(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    lm, store, plan, result, cfg = await _run_days(tmp_path, 8, 10.0)
    before = plan.read_text()
    # The 03:00 cron ran the re-plan on the clock (days 1-8), each time off the event loop.
    daily = [r for r in caplog.records if r.getMessage() == "replan_requested"]
    assert len(daily) >= 8
    assert result is not None and result.days > 7
    cap = continuous_limit_kw(cfg)  # 100 A x 400 V x sqrt(3) x 0.8 = 55.4 kW
    s = lm.plan.schedule
    assert s is not None and s.source == str(live_path(plan))
    # Weekdays 14:00 the building takes 40 kW: 55.4 - 40 = 15.4 kW, below the study's 30.
    assert s.weekday_kw[14] == pytest.approx(cap - 40.0, abs=0.01)
    # Everywhere else the meter alone would allow 45.4 kW, but 8 days cannot raise the year-long study's 30.
    assert s.weekday_kw[13] == STUDY_KW and s.weekend_kw[14] == STUDY_KW
    applied = [r.evsite_fields for r in caplog.records if r.getMessage() == "replan_applied"]  # type: ignore[attr-defined]
    # The re-plan that first saw a weekday 14:00 logged that change, with the span of data it used.
    first = next(a for a in applied if "weekday 14:00 30.0->15.4" in a["changes"])
    assert 0.4 < first["days"] < 8.0 and first["data_from"] == START.isoformat()
    assert "merged with the plan's study" in applied[-1]["basis"] and applied[-1]["buckets"] > 700
    # plan.live.json is written beside plan.json, which is untouched, and it is read back after a restart.
    assert plan.read_text() == before
    doc = json.loads(live_path(plan).read_text())
    assert doc["buildings"][0]["ev_ceiling_kw"]["by_day_type"]["weekday"][14] == pytest.approx(cap - 40.0, abs=0.01)
    again, store2 = load_manager(cfg, ManualClock(START))
    assert again.plan.schedule is not None and again.plan.schedule.weekday_kw == s.weekday_kw
    store2.close()
    # Editing plan.json makes the user's plan win again (the live plan was derived from the old file).
    plan.write_text(plan.read_text().replace("25.0", "26.0"))
    import os

    os.utime(plan, ns=(1, 1))
    lm.rebuild()
    assert lm.plan.schedule is not None and lm.plan.schedule.source == str(plan)
    store.close()


async def test_long_own_history_follows_the_building_but_never_above_the_service(tmp_path: Path) -> None:
    lm, store, _plan_path, result, cfg = await _run_days(tmp_path, 3, 2.0, "replan_own_history_days = 2")
    assert result is not None and "stored building meter alone" in result.basis
    cap = continuous_limit_kw(cfg)
    s = lm.plan.schedule
    assert s is not None
    assert s.weekday_kw[3] == pytest.approx(cap - 2.0, abs=0.01)  # raised above the study's 30 kW ...
    assert max(s.weekday_kw + s.weekend_kw) <= cap + 1e-9  # ... never above the continuous rating
    assert s.weekday_kw[14] == pytest.approx(cap - 40.0, abs=0.01)
    store.close()


async def test_a_failed_replan_keeps_the_plan_and_says_why(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    plan = _plan(tmp_path)
    cfg = site_config(tmp_path, f'plan = "{plan}"')
    lm, store = load_manager(cfg, ManualClock(START))
    lm.replan("operator")
    assert lm.replanner.task is not None and await lm.replanner.task is None
    failed = [r for r in caplog.records if r.getMessage() == "replan_failed"]
    assert failed and "no building meter history" in failed[0].evsite_fields["error"]  # type: ignore[attr-defined]
    assert lm.plan.schedule is not None and lm.plan.schedule.source == str(plan)
    assert not live_path(plan).exists()
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_history_is_kept_as_15_minute_means_weighted_by_reading_count(tmp_path: Path, backend: str, request) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = Store.open(url)
    b = LoadBuckets()
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    rows = []
    for minute, kw in [(0, 10.0), (5, 20.0), (14, 30.0), (16, 50.0)]:
        rows += b.add("site", t0 + timedelta(minutes=minute), kw)
    assert len(rows) == 1 and rows[0]["data"]["mean_kw"] == 20.0 and rows[0]["data"]["max_kw"] == 30.0
    rows += b.add("site", t0 + timedelta(minutes=10), 80.0)  # late: a row of its own for the 08:00 bucket
    rows += b.flush()
    store.add_events(rows)
    h = read_history(store)
    assert list(h.index) == [t0, t0 + timedelta(minutes=15)]
    assert h.iloc[0] == pytest.approx((10 + 20 + 30 + 80) / 4) and h.iloc[1] == 50.0
    store.close()


def test_response_and_staleness_are_at_least_a_real_second_on_an_accelerated_clock(tmp_path: Path) -> None:
    cfg = site_config(tmp_path, "building_peak_kw = 25\nresponse_s = 5\nmin_real_s = 1", "stale_after_s = 30")
    clock = ManualClock(START)
    lm, store = load_manager(cfg, clock)
    lm.handle("meter/site", MeterReading(START - timedelta(seconds=60), 12.0))
    assert lm.building_kw(START) == (25.0, True)  # speed 1: 60 s old is stale (30 s)
    assert lm.sim_s(5.0) == 5.0
    clock.speed = 600.0  # a simulation at 600x: one real second is 600 simulated seconds
    assert lm.sim_s(5.0) == 600.0 and lm.sim_s(30.0) == 600.0
    assert lm.building_kw(START) == (12.0, False)  # 60 simulated seconds = 0.1 real s: fresh
    # A charger 20 A over its 10 A limit for 60 simulated seconds: within one real second at 600x, not flagged.
    lm.handle("ocpp/connection", ev.ConnectionEvent("CP1", True, START))
    lm.handle("ocpp/transaction", ev.TransactionEvent("CP1", 1, 1, "started", "TAG", 0, START))
    lm.tracks[("CP1", 1)].set_limit(10.0, START, START + timedelta(seconds=120), "test")
    for s in (0, 60):
        lm.handle("ocpp/meter", ev.MeterEvent("CP1", 1, 1, START + timedelta(seconds=s), current_a=20.0))
    assert not lm.tracks[("CP1", 1)].noncompliant
    clock.speed = 1.0  # the same at real speed is 60 s over a 5 s response time
    lm.handle("ocpp/meter", ev.MeterEvent("CP1", 1, 1, START + timedelta(seconds=120), current_a=20.0))
    assert lm.tracks[("CP1", 1)].noncompliant
    store.close()


def test_a_replan_never_raises_a_ceiling_above_the_continuous_rating(tmp_path: Path) -> None:
    import pandas as pd

    from controller.loadmgmt.plan_schedule import PlanSchedule
    from controller.loadmgmt.replan import compute

    # A building exporting 20 kW (solar) all week: cf x rating - (-20) would be 75.4 kW, above the 55.4 kW limit.
    cfg = site_config(tmp_path, "replan_own_history_days = 1").model_copy(deep=True)
    cfg.planning.allow_export = True
    index = pd.date_range(START, periods=7 * 96, freq="15min")
    history = pd.Series(-20.0, index=index)
    base = PlanSchedule("plan.json", "UTC", (30.0,) * 24, (30.0,) * 24, None, None)
    r = compute(history, base, cfg, None, "plan.live.json")
    cap = continuous_limit_kw(cfg)
    hours = r.schedule.weekday_kw + r.schedule.weekend_kw
    assert max(hours) <= cap and min(hours) == pytest.approx(cap)
