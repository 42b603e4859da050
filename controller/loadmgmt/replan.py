"""The daily re-plan: the hourly EV ceiling recomputed from the building meter the controller stored.

Why the same functions as ``evsite plan``: a ceiling the controller computes live must mean what the study's
ceiling means. So the stored 15-minute history (``meter_history``) goes through ``planning.cleaning
.clean_series`` and ``planning.pipeline.static_ceiling`` with ``[planning]``'s cleaning rules and
``static_percentile``: per day type and local hour, ``cf x rating - load / pf`` against the highest (or the
chosen percentile of the) measured load. The cost model (GEKKO, HiGHS) is not re-run: it schedules energy
under the ceiling, and load management reads only the ceiling.

Short history: until the stored meter covers ``[site] replan_own_history_days`` (365 by default: a year has
every season), the new ceiling is the lower of the study's and the stored meter's in every hour, so a month
of mild weather can only lower the plan, never raise it above what the year-long study allows. From then on
the stored meter alone decides, so the ceiling follows the building as it is now.

Never above the service: every hour is clipped to ``continuous_load_factor x rating`` of ``[service]``.

Why off the event loop: reading a year of history and cleaning it takes CPU time the central system cannot
spare; the whole computation (store read, planning, writing ``plan.live.json``) runs in an executor, and the
switch to the new ceiling is one assignment on the loop (``PlanFile.set_live``), refused if plan.json changed
meanwhile. A failure is logged with its reason and the plan in force stays.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from controller.loadmgmt.meter_history import read_history
from controller.loadmgmt.plan_schedule import PlanSchedule, live_path
from controller.loadmgmt.site_model import continuous_limit_kw
from evsite.config import Config
from evsite.log import log_event
from planning.capacity import Service
from planning.cleaning import clean_series
from planning.errors import PlanningError
from planning.pipeline import static_ceiling

log = logging.getLogger("controller.loadmgmt.replan")

DAY_TYPES = ("weekday", "weekend")


class ReplanError(Exception):
    """Why a re-plan produced nothing (the plan in force stays)."""


@dataclass(frozen=True)
class Replan:
    """A re-planned schedule and what it was computed from."""

    schedule: PlanSchedule
    old_kw: dict[str, tuple[float, ...]]
    new_kw: dict[str, tuple[float, ...]]
    data_from: datetime
    data_to: datetime
    days: float
    buckets: int
    basis: str
    check: dict[str, Any]

    def changes(self) -> list[str]:
        """``"weekday 14:00 30.0->25.0"`` for every hour whose ceiling moved by 0.05 kW or more."""
        out = []
        for day in DAY_TYPES:
            for h, (a, b) in enumerate(zip(self.old_kw[day], self.new_kw[day], strict=True)):
                if abs(a - b) >= 0.05:
                    out.append(f"{day} {h:02d}:00 {a:.1f}->{b:.1f}")
        return out


def compute(
    history: pd.Series,
    base: PlanSchedule,
    config: Config,
    building: str | None,
    source: str,
    in_force: PlanSchedule | None = None,
) -> Replan:
    """The new schedule from ``history`` (mean kW, UTC index) and the user's plan ``base`` (see the module
    docstring). Always merged with ``base``, never with an earlier re-plan (a min over re-plans would only
    ratchet down); ``in_force`` (default ``base``) is what the change log compares with."""
    history = history.dropna()
    if history.empty:
        raise ReplanError("no building meter history stored yet ([mqtt] meter readings are recorded as they arrive)")
    tz = base.tz
    p = config.planning
    local = pd.Series(history.to_numpy(float), index=history.index.tz_convert(tz).tz_localize(None))
    try:
        series, _report = clean_series(
            local,
            site_tz=tz,
            zero_run_min_h=p.zero_run_min_h,
            outlier_k=p.outlier_k,
            max_fill_h=p.max_fill_h,
            name="stored building meter",
            keep_spikes=p.keep_spikes,
            allow_export=p.allow_export,
        )
    except PlanningError as err:
        raise ReplanError(str(err)) from None
    if series.dropna().empty:
        raise ReplanError("the stored building meter history has no usable reading after cleaning")
    rating_a = p.rating_a_by_meter.get(building or "", config.service.rating_a)
    service = Service.from_config(config.service.model_copy(update={"rating_a": rating_a}))
    ceilings, loads, check = static_ceiling(series, service, p.static_percentile)
    step = history.index.to_series().diff().median() if history.size > 1 else pd.Timedelta(0)
    days = (history.index[-1] - history.index[0] + step) / pd.Timedelta(days=1)  # the span the rows cover
    study = {"weekday": np.asarray(base.weekday_kw), "weekend": np.asarray(base.weekend_kw)}
    now_in_force = in_force or base
    old = {"weekday": np.asarray(now_in_force.weekday_kw), "weekend": np.asarray(now_in_force.weekend_kw)}
    own = days >= config.site.replan_own_history_days
    cap = continuous_limit_kw(config)
    new = {}
    for day in DAY_TYPES:
        ceiling = ceilings[day] if own else np.minimum(ceilings[day], study[day])
        new[day] = np.clip(np.round(ceiling, 3), 0.0, cap)
    basis = (
        f"stored building meter alone ({days:.1f} days >= [site] replan_own_history_days)"
        if own
        else f"stored building meter ({days:.1f} days) merged with the plan's study: each hour the lower ceiling"
    )
    worst = np.maximum(loads["weekday"], loads["weekend"])
    forecast = worst if base.building_kw is None else np.maximum(np.asarray(base.building_kw), worst)
    peak = float(history.max()) if base.building_peak_kw is None else max(base.building_peak_kw, float(history.max()))
    schedule = PlanSchedule(
        source,
        tz,
        tuple(float(v) for v in new["weekday"]),
        tuple(float(v) for v in new["weekend"]),
        tuple(float(v) for v in np.round(forecast, 3)),
        round(peak, 3),
    )
    return Replan(
        schedule,
        {k: tuple(float(x) for x in v) for k, v in old.items()},
        {k: tuple(float(x) for x in v) for k, v in new.items()},
        history.index[0].to_pydatetime(),
        history.index[-1].to_pydatetime(),
        float(days),
        int(history.size),
        basis,
        check,
    )


def live_document(r: Replan, base: PlanSchedule, base_mtime_ns: int | None, who: str, at: datetime) -> dict:
    """``plan.live.json``: read back by ``plan_schedule.parse_plan`` (and by operators)."""
    s = r.schedule
    return {
        "generated_by": "evsite serve: daily re-plan (controller.loadmgmt.replan)",
        "generated_at": at.isoformat(),
        "who": who,
        "base_plan": base.source,
        "base_plan_mtime_ns": base_mtime_ns,
        "data": {
            "from": r.data_from.isoformat(),
            "to": r.data_to.isoformat(),
            "days": round(r.days, 3),
            "buckets_15min": r.buckets,
            "basis": r.basis,
        },
        "buildings": [
            {
                "name": "site",
                "ev_ceiling_kw": {
                    "tz": s.tz,
                    "by_day_type": {"weekday": list(s.weekday_kw), "weekend": list(s.weekend_kw)},
                    "basis": r.basis,
                    "applies_to": "the whole site's EV power (all chargers together), kW, local wall-clock hours",
                },
                "previous_ev_ceiling_kw": {k: list(v) for k, v in r.old_kw.items()},
                "baseload_kw": list(s.building_kw or ()),
                "max_demand": {"kw": s.building_peak_kw},
                "static_check": r.check,
            }
        ],
    }


def write_atomically(path: Path, doc: dict) -> None:
    """Write JSON so a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class LiveReplanner:
    """Runs one re-plan at a time for a ``LoadManager`` (``start``); ``task`` is the one running, if any."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.task: asyncio.Task[Replan | None] | None = None
        self.last: Replan | None = None

    def start(self, who: str) -> asyncio.Task[Replan | None] | None:
        """Start a re-plan unless one is running (then that one stands); None without a plan to start from."""
        if self.task is not None and not self.task.done():
            log_event(log, "replan_already_running", who=who)
            return self.task
        self.task = asyncio.get_running_loop().create_task(self._run(who), name="lm-replan-compute")
        return self.task

    async def _run(self, who: str) -> Replan | None:
        m = self.manager
        plan = m.plan
        base, in_force, base_mtime = plan.file_schedule, plan.schedule, plan.mtime_ns
        if plan.path is None or base is None:
            log_event(log, "replan_skipped", logging.WARNING, who=who,
                      reason="no [site] plan in force: nothing to re-plan from (run `evsite plan`)")  # fmt: skip
            return None
        store = getattr(m.csms, "store", None)
        if store is None:
            log_event(log, "replan_skipped", logging.WARNING, who=who, reason="no store: no meter history")
            return None
        out = live_path(plan.path)
        config, building, now = m.config, plan.building, m.clock.now()
        db = getattr(m.csms, "db", None)
        if db is not None:
            await db.flush()  # every reading received so far is in the store before the history is read

        def job() -> Replan:
            history = read_history(store)
            r = compute(history, base, config, building, str(out), in_force)
            write_atomically(out, live_document(r, base, base_mtime, who, now))
            return r

        try:
            r = await asyncio.get_running_loop().run_in_executor(None, job)
        except (ReplanError, PlanningError, OSError, ValueError) as err:
            log_event(log, "replan_failed", logging.WARNING, who=who, error=str(err), kept=(in_force or base).source)
            return None
        if not plan.set_live(r.schedule, base_mtime):
            log_event(log, "replan_discarded", logging.WARNING, who=who,
                      reason="the plan file changed while re-planning: the new file is in force")  # fmt: skip
            return None
        self.last = r
        changes = r.changes()
        log_event(log, "replan_applied", who=who, written=str(out), data_from=r.data_from.isoformat(),
                  data_to=r.data_to.isoformat(), days=round(r.days, 2), buckets=r.buckets, basis=r.basis,
                  hours_changed=len(changes), changes="; ".join(changes) or "none",
                  old_kw={k: list(v) for k, v in r.old_kw.items()},
                  new_kw={k: list(v) for k, v in r.new_kw.items()})  # fmt: skip
        m.rebuild()
        m.wake()
        return r
