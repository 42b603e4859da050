"""The site model from config: tree errors name the key; constraints per phase and in kW; the plan; clockwork."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from apscheduler.triggers.cron import CronTrigger

from controller.loadmgmt.clockwork import next_fire
from controller.loadmgmt.plan_schedule import PlanError, PlanFile
from controller.loadmgmt.site_model import (
    SERVICE_KW_ROW,
    build_constraints,
    building_load,
    site_limit_kw,
    specs_for,
    uniform_safe_current_a,
)
from evsite.config import ConfigError, parse_config_text
from planning.allocation.model import Sessions, Snapshot
from planning.allocation.policies import allocate

SITE = """
[service]
rating_a = 100
voltage_v = 400
phases = 3
[[site.panels]]
id = "P1"
rating_a = 40
[[site.panels]]
id = "C1"
parent = "P1"
rating_a = 20
phases = 1
phase_map = ["L2"]
[[chargers]]
id = "A"
connectors = 2
max_current_a = 32
circuit = "P1"
[[chargers]]
id = "B"
phases = 1
phase_map = ["L2"]
circuit = "C1"
[[chargers]]
id = "C"
"""


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            '[[site.panels]]\nid="A"\nparent="B"\nrating_a=10\n[[site.panels]]\nid="B"\nparent="A"\nrating_a=10',
            "site.panels.0.parent: cycle",
        ),
        ('[[site.panels]]\nid="A"\nparent="X"\nrating_a=10', "site.panels.0.parent: unknown panel 'X'"),
        ('[[chargers]]\nid="C"\ncircuit="nowhere"', "chargers.0.circuit: unknown panel 'nowhere'"),
        ("[site]\nlimit_kw = 500", "site.limit_kw: 500 kW is above the service's continuous rating"),
        ('[[chargers]]\nid="C"\nphases=1\nphase_map=["L1","L2"]', "phase_map must name 1 distinct phase"),
    ],
)
def test_bad_site_trees_are_config_errors_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_config_text(text)


def test_constraints_cover_service_phases_kw_and_every_panel() -> None:
    cfg = parse_config_text(SITE)
    specs = specs_for(cfg, [])
    c = build_constraints(cfg, specs, site_limit_kw(cfg))
    assert c.connectors == ("A/1", "A/2", "B/1", "C/1")
    row = dict(zip(c.names, range(len(c.names)), strict=True))
    # Panel P1 holds A and (through C1) B; B is single-phase on L2 only.
    assert list(c.A[row["panel P1 L1"]]) == [1, 1, 0, 0]
    assert list(c.A[row["panel P1 L2"]]) == [1, 1, 1, 0]
    assert list(c.A[row["panel C1 L2"]]) == [0, 0, 1, 0]
    assert list(c.A[row["service L2"]]) == [1, 1, 1, 1]
    assert c.b[row["panel C1 L2"]] == pytest.approx(16.0)  # 0.8 x 20 A
    # kW per ampere from the charger's own phase voltage and phases (230 V x 3, 230 V x 1).
    assert c.A[row[SERVICE_KW_ROW]] == pytest.approx([0.69, 0.69, 0.23, 0.69])
    assert c.b[row[SERVICE_KW_ROW]] == pytest.approx(0.8 * 100 * 400 * 3**0.5 / 1000)
    # 10 kW of building is 14.4 A per phase on a 400 V three-phase service and 10 kW on the kW row.
    unc = building_load(c, cfg, 10.0)
    assert unc[row["service L1"]] == pytest.approx(10.0 / (400 * 3**0.5 / 1000))
    assert unc[row[SERVICE_KW_ROW]] == 10.0 and unc[row["panel P1 L1"]] == 0.0


def test_allocation_on_the_tree_respects_every_row_and_the_fail_safe_fits() -> None:
    cfg = parse_config_text(SITE)
    specs = specs_for(cfg, [])
    c = build_constraints(cfg, specs, site_limit_kw(cfg))
    unc = building_load(c, cfg, 30.0)
    s = Sessions.empty(4, max_a=32.0)
    s.active[:] = True
    s.kw_per_a = np.array([x.kw_per_a for x in specs])
    alloc = allocate(Snapshot(c, s, unc), "equal")
    assert np.all(c.A @ alloc.limit_a <= c.b - unc + 1e-6)
    assert alloc.limit_a[2] <= 16.0 + 1e-9  # circuit C1
    u = uniform_safe_current_a(c, unc, 6.0)
    assert u >= 6.0 and np.all(c.A @ np.full(4, u) <= c.b - unc + 1e-6)
    # A building that takes the whole service leaves no usable fail-safe: 0 A (paused), never 0 < x < 6 A.
    assert uniform_safe_current_a(c, building_load(c, cfg, 54.0), 6.0) == 0.0


def test_plan_reads_both_shapes_by_local_hour_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    weekday = [10.0] * 24
    weekday[17] = 3.0
    path.write_text(json.dumps({"buildings": [{"name": "b", "ev_ceiling_kw": {
        "tz": "America/New_York", "by_day_type": {"weekday": weekday, "weekend": [20.0] * 24}}}]}))  # fmt: skip
    plan = PlanFile(path, None, "UTC")
    assert plan.poll()
    s = plan.schedule
    assert s is not None
    # 21:30 UTC on a Monday in March (after the DST change) is 17:30 in New York.
    assert s.ceiling_kw(datetime(2026, 3, 9, 21, 30, tzinfo=UTC)) == 3.0
    assert s.ceiling_kw(datetime(2026, 3, 7, 21, 30, tzinfo=UTC)) == 20.0  # Saturday
    path.write_text("{not json")
    with pytest.raises(PlanError, match="not readable JSON"):
        plan.poll()
    assert plan.schedule is s
    path.write_text(json.dumps({"buildings": [{"schedule_kw": [5.0] * 24, "site_timezone": "Europe/London",
                                               "baseload_kw": [7.0] * 24}]}))  # fmt: skip
    assert plan.poll() and plan.schedule.ceiling_kw(datetime(2026, 3, 7, 1, tzinfo=UTC)) == 5.0
    assert plan.schedule.building_forecast_kw(datetime(2026, 3, 7, 1, tzinfo=UTC)) == 7.0
    path.write_text(json.dumps({"buildings": [{"schedule_kw": [5.0] * 23}]}))
    with pytest.raises(PlanError, match=r"buildings\.0\.schedule_kw: expected 24 hourly values"):
        plan.poll()


def test_plan_periods_switch_on_local_time_across_dst() -> None:
    hourly = CronTrigger(minute=0, second=0, timezone="America/New_York")
    # 2026-03-08 01:30 EST; the next local hour is 03:00 EDT, one real hour later (02:00 does not exist).
    before = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    fire = next_fire(hourly, None, before)
    assert fire is not None and fire.astimezone(UTC) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert fire.hour == 3


async def test_triggers_fire_on_the_shared_clock_not_the_wall_clock() -> None:
    import asyncio

    from apscheduler.triggers.interval import IntervalTrigger

    from controller.loadmgmt.clockwork import run_trigger
    from evsite.clock import ManualClock

    clock = ManualClock(datetime(2026, 3, 8, 6, 30, tzinfo=UTC))
    fired: list[datetime] = []
    hourly = CronTrigger(minute=0, second=0, timezone="America/New_York")
    every = IntervalTrigger(seconds=600, start_date=clock.now(), timezone="UTC")
    tasks = [
        asyncio.create_task(run_trigger(clock, hourly, fired.append, "hourly")),
        asyncio.create_task(run_trigger(clock, every, lambda t: None, "refresh")),
    ]
    await asyncio.sleep(0)
    await clock.advance(2 * 3600)  # two simulated hours pass in no wall time at all
    for t in tasks:
        t.cancel()
    # 07:00 and 08:00 UTC: 03:00 EDT (02:00 was skipped by DST) and 04:00 EDT.
    assert [f.astimezone(UTC).hour for f in fired] == [7, 8]


def test_every_profile_starts_a_day_before_now_so_a_slow_charger_clock_applies_it_at_once() -> None:
    from datetime import UTC, datetime

    from controller.loadmgmt import profiles as prof

    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    shape = prof.Shape("A", 2, 230.0, 3)
    for profile in (
        prof.fail_safe_profile(shape, 8.0, now),
        prof.live_profile(shape, 1, 16.0, now, 120, 2),
        prof.ceiling_profile(shape, 20.0, now),
    ):
        assert profile["chargingSchedule"]["startSchedule"] == "2026-03-01T08:00:00Z"
