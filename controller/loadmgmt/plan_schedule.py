"""The active plan (``[site] plan``, written by ``evsite plan``): the hourly EV ceiling and the building forecast.

Why a reader of its own: load management must keep running when the plan is missing, malformed or being
rewritten, so a bad file is reported (``PlanError`` naming the file and the field) and the previous plan
stays in force; a changed file (mtime) is read again.

Two shapes are understood, whichever the file carries for the chosen building:

- ``ev_ceiling_kw``: ``{"tz": "America/New_York", "by_day_type": {"weekday": [24 kW], "weekend": [24 kW]}}``;
- today's ``schedule_kw`` (24 kW, every day) with ``site_timezone``.

The conservative building forecast is ``baseload_kw`` (24 kW by local hour) when present, else the plan's
``max_demand.kw``; it replaces the meter when the meter is stale.

The daily re-plan (``controller.loadmgmt.replan``) writes ``<plan>.live.json`` beside the user's file and
never touches the file itself. ``PlanFile.schedule`` is that live plan while it derives from the plan file as
it is now (its ``base_plan_mtime_ns``), else the file's own plan: editing plan.json makes the edit win at
once, and a restart picks the live plan up again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo


class PlanError(ValueError):
    """A plan file that cannot be used; ``str()`` names the file and the problem."""


def _hours(values: Any, where: str) -> tuple[float, ...]:
    if not isinstance(values, list) or len(values) != 24:
        raise PlanError(f"{where}: expected 24 hourly values")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise PlanError(f"{where}: expected finite kW >= 0, got {v!r}")
        out.append(float(v))
    return tuple(out)


@dataclass(frozen=True)
class PlanSchedule:
    """Hourly EV ceiling by day type in the site's time zone, and the building forecast (kW)."""

    source: str
    tz: str
    weekday_kw: tuple[float, ...]
    weekend_kw: tuple[float, ...]
    building_kw: tuple[float, ...] | None
    building_peak_kw: float | None

    def _local(self, at: datetime) -> datetime:
        return at.astimezone(ZoneInfo(self.tz))

    def period(self, at: datetime) -> str:
        """The plan period in force (``weekday 14:00``), in local time (DST included)."""
        local = self._local(at)
        return f"{'weekend' if local.weekday() >= 5 else 'weekday'} {local.hour:02d}:00"

    def ceiling_kw(self, at: datetime) -> float:
        local = self._local(at)
        return (self.weekend_kw if local.weekday() >= 5 else self.weekday_kw)[local.hour]

    def building_forecast_kw(self, at: datetime) -> float | None:
        if self.building_kw is not None:
            return self.building_kw[self._local(at).hour]
        return self.building_peak_kw


def parse_plan(doc: Any, source: str, building: str | None, default_tz: str) -> PlanSchedule:
    """One building of a plan.json document (see the module docstring)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("buildings"), list) or not doc["buildings"]:
        raise PlanError(f"{source}: expected a plan.json with a non-empty 'buildings' list")
    entries = doc["buildings"]
    if building is None:
        entry, idx = entries[0], 0
    else:
        found = [(i, b) for i, b in enumerate(entries) if isinstance(b, dict) and b.get("name") == building]
        if not found:
            raise PlanError(f"{source}: no building named {building!r} ([site] plan_building)")
        idx, entry = found[0]
    where = f"{source}: buildings.{idx}"
    ceiling = entry.get("ev_ceiling_kw")
    if ceiling is not None:
        if not isinstance(ceiling, dict) or not isinstance(ceiling.get("by_day_type"), dict):
            raise PlanError(f"{where}.ev_ceiling_kw: expected {{'tz': ..., 'by_day_type': {{...}}}}")
        tz = ceiling.get("tz") or default_tz
        days = ceiling["by_day_type"]
        weekday = _hours(days.get("weekday"), f"{where}.ev_ceiling_kw.by_day_type.weekday")
        weekend = _hours(days.get("weekend", days.get("weekday")), f"{where}.ev_ceiling_kw.by_day_type.weekend")
    elif "schedule_kw" in entry:
        tz = entry.get("site_timezone") or default_tz
        weekday = weekend = _hours(entry["schedule_kw"], f"{where}.schedule_kw")
    else:
        raise PlanError(f"{where}: neither 'ev_ceiling_kw' nor 'schedule_kw' (not a plan of `evsite plan`?)")
    try:
        ZoneInfo(tz)
    except (KeyError, ValueError) as err:
        raise PlanError(f"{where}: unknown time zone {tz!r}") from err
    base = entry.get("baseload_kw")
    building_kw = _hours(base, f"{where}.baseload_kw") if base is not None else None
    peak = (entry.get("max_demand") or {}).get("kw") if isinstance(entry.get("max_demand"), dict) else None
    peak_kw = float(peak) if isinstance(peak, int | float) and math.isfinite(peak) else None
    return PlanSchedule(source, tz, weekday, weekend, building_kw, peak_kw)


def live_path(plan_path: Path) -> Path:
    """Where the daily re-plan writes its result: ``plan-out/plan.json`` -> ``plan-out/plan.live.json``."""
    return plan_path.with_name(f"{plan_path.stem}.live.json")


class PlanFile:
    """``[site] plan`` read when it changes; ``schedule`` is the plan in force (None: none yet)."""

    def __init__(self, path: Path | None, building: str | None, default_tz: str) -> None:
        self.path = path
        self.building = building
        self.default_tz = default_tz
        self.file_schedule: PlanSchedule | None = None
        self.live: PlanSchedule | None = None
        self._mtime: float | None = None
        self.mtime_ns: int | None = None
        self._missing_reported = False

    @property
    def schedule(self) -> PlanSchedule | None:
        """The re-planned schedule when there is one for the current file, else the file's."""
        return self.live if self.live is not None else self.file_schedule

    def set_live(self, schedule: PlanSchedule, base_mtime_ns: int | None) -> bool:
        """Switch to a re-planned schedule (one assignment); refused (False) if the file changed since."""
        if base_mtime_ns != self.mtime_ns:
            return False
        self.live = schedule
        return True

    def poll(self) -> bool:
        """Re-read the file when its mtime changed; True when a new plan took effect. Raises ``PlanError``."""
        if self.path is None:
            return False
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._missing_reported:
                return False
            self._missing_reported = True
            self._mtime = None
            raise PlanError(f"{self.path}: plan file not found (run `evsite plan`); previous plan kept") from None
        self._missing_reported = False
        if stat.st_mtime == self._mtime:
            return False
        self._mtime = stat.st_mtime
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PlanError(f"{self.path}: not readable JSON ({err}); keeping the previous plan") from None
        self.file_schedule = parse_plan(doc, str(self.path), self.building, self.default_tz)
        self.mtime_ns = stat.st_mtime_ns
        self.live = self._live_for_this_file()
        return True

    def _live_for_this_file(self) -> PlanSchedule | None:
        """The re-plan written for exactly this plan file (after a restart), or None."""
        assert self.path is not None
        path = live_path(self.path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # no re-plan yet, or an unreadable one: the plan file itself is in force
        if not isinstance(doc, dict) or doc.get("base_plan_mtime_ns") != self.mtime_ns:
            return None
        try:
            return parse_plan(doc, str(path), None, self.default_tz)
        except PlanError:
            return None  # a damaged re-plan never blocks the user's plan; the next re-plan rewrites it
