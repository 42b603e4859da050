"""The load manager's calendar: plan periods, profile refreshes and the daily re-plan, on the shared clock.

Why APScheduler's triggers but not its scheduler: APScheduler 3 reads the wall clock and has no clock hook,
so its schedulers cannot run a simulated day in a minute. Its triggers are pure calendar arithmetic
(``get_next_fire_time(previous, now)``, DST-aware in the site's zone), so each job here asks its trigger for
the next fire time and sleeps until then on ``evsite.clock``: the same code runs live and accelerated.

Jobs: every hour on the hour in the site's time zone (plan periods switch); every half profile validity on
the live limits' common expiry grid (live profiles are refreshed before their ``validTo``); ``[site]
replan_cron`` (the daily re-plan from the stored meter, ``replan``); and, with a ``[tariff]``, each local
hour where a time-of-use price changes (the tier in force is published and the allocation uses it,
``tariff_tiers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from controller.loadmgmt.profiles import grid_start
from evsite.clock import Clock
from evsite.log import log_event

log = logging.getLogger("controller.loadmgmt.clockwork")


def next_fire(trigger: Any, previous: datetime | None, now: datetime) -> datetime | None:
    """The trigger's next fire time after ``now`` (APScheduler returns one >= now)."""
    return trigger.get_next_fire_time(previous, now)


async def run_trigger(clock: Clock, trigger: Any, job: Callable[[datetime], None], name: str) -> None:
    """Call ``job(fire_time)`` at each fire time of ``trigger``, waiting on ``clock`` (until cancelled)."""
    previous: datetime | None = None
    while True:
        now = clock.now()
        fire = next_fire(trigger, previous, now)
        if fire is None:
            return
        if previous is not None and fire <= previous:
            fire = next_fire(trigger, previous, previous + timedelta(microseconds=1))
            if fire is None:
                return
        await clock.sleep(max((fire - clock.now()).total_seconds(), 0.0))
        previous = fire
        try:
            job(fire)
        except Exception:
            log.exception("clockwork_job_failed job=%s", name)


class Clockwork:
    """The load manager's three triggers as tasks (see the module docstring)."""

    def __init__(self, manager: Any, clock: Clock) -> None:
        self.manager = manager
        self.clock = clock
        site = manager.config.site
        tz = ZoneInfo(site.timezone)
        self.hourly = CronTrigger(minute=0, second=0, timezone=tz)
        # on the live limits' expiry grid (``profiles.common_expiry``): every limit is refreshed in one wave
        first = grid_start(clock.now(), site.profile_validity_s)
        self.refresh = IntervalTrigger(seconds=site.profile_validity_s / 2, start_date=first, timezone=tz)
        self.replan = CronTrigger.from_crontab(site.replan_cron, timezone=tz)
        tiers = getattr(manager, "tiers", None)
        self.tier = None if tiers is None else CronTrigger(hour=tiers.cron_hours(), minute=0, second=0, timezone=tz)

    def _period(self, fire: datetime) -> None:
        log_event(log, "plan_period", at=fire.isoformat())
        self.manager.wake()

    def _refresh(self, fire: datetime) -> None:
        self.manager.wake()

    def _replan(self, fire: datetime) -> None:
        self.manager.replan("daily schedule")

    def _tier(self, fire: datetime) -> None:
        self.manager.switch_tier(fire)

    def tasks(self) -> list[asyncio.Task[None]]:
        tasks = [
            asyncio.create_task(run_trigger(self.clock, self.hourly, self._period, "plan-period"), name="lm-hourly"),
            asyncio.create_task(run_trigger(self.clock, self.refresh, self._refresh, "refresh"), name="lm-refresh"),
            asyncio.create_task(run_trigger(self.clock, self.replan, self._replan, "replan"), name="lm-replan"),
        ]
        if self.tier is not None:
            tier = run_trigger(self.clock, self.tier, self._tier, "tariff")
            tasks.append(asyncio.create_task(tier, name="lm-tariff"))
        return tasks
