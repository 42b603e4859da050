"""Time-of-use tariffs: dated tiers from config, acnportal compact JSON and OpenEI URDB JSON.

Every format becomes a list of ``TariffRule`` (a date window in MM-DD, a day mask, 24 hourly prices in
cents/kWh). ``hourly_prices(days)`` then gives one 24-price row per day, vectorised over the days.

Dates: the seed wrote tier starts as ``01/07/2022`` and parsed them month-first, so the July tier started on
7 January. Config tier starts are ``MM-DD`` (or ``YYYY-MM-DD``); anything else is rejected with a message
rather than guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from planning.errors import PlanningError

if TYPE_CHECKING:
    from evsite.config import TariffConfig

# The seed study's ConEdison-style prices (cents/kWh): tiers start 1 Jan, 1 Jul, 1 Oct; 0-7 h cheap.
SEED_RESIDENTIAL = [[1.8] * 8 + [9.44] * 16, [1.8] * 8 + [25.5] * 16, [1.8] * 8 + [9.44] * 16]
SEED_BUSINESS = [[1.38] * 8 + [18.62] * 16, [1.38] * 8 + [37.82] * 16, [1.38] * 8 + [18.62] * 16]
SEED_TIER_STARTS = ["01-01", "07-01", "10-01"]


@dataclass(frozen=True)
class TariffRule:
    start: int  # day-of-year key MMDD as int (101 = 1 Jan)
    end: int  # inclusive; start > end wraps over the new year
    days: str  # "ALL" | "WEEKDAYS" | "WEEKENDS"
    cents: tuple[float, ...]  # 24 hourly prices, cents/kWh
    name: str = ""


@dataclass
class Tariff:
    name: str
    rules: list[TariffRule]

    def hourly_prices(self, days: pd.DatetimeIndex) -> np.ndarray:
        """(n_days, 24) cents/kWh. Later rules do not override earlier ones: the first match wins."""
        days = pd.DatetimeIndex(days)
        key = days.month * 100 + days.day
        weekend = days.day_of_week >= 5
        out = np.full((len(days), 24), np.nan)
        for r in self.rules:
            in_window = (key >= r.start) & (key <= r.end) if r.start <= r.end else (key >= r.start) | (key <= r.end)
            mask = in_window & (weekend if r.days == "WEEKENDS" else ~weekend if r.days == "WEEKDAYS" else True)
            mask &= np.isnan(out[:, 0])
            out[mask] = r.cents
        if np.isnan(out).any():
            first = days[np.isnan(out[:, 0])][0]
            raise PlanningError(f"tariff {self.name!r} has no price for {first.date()}")
        return out

    def mean_prices(self, days: pd.DatetimeIndex) -> np.ndarray:
        """Mean 24-hour price over ``days`` (e.g. the baseload cluster's days)."""
        return self.hourly_prices(days).mean(axis=0)


def parse_mmdd(text: str, where: str) -> int:
    """``MM-DD`` or ``YYYY-MM-DD`` -> MMDD int; slashed dates are ambiguous and rejected."""
    m = re.fullmatch(r"(?:\d{4}-)?(\d{1,2})-(\d{1,2})", text.strip())
    if not m:
        raise PlanningError(f"{where}: {text!r} is not MM-DD (slashed dates like 01/07 are ambiguous)")
    month, day = int(m.group(1)), int(m.group(2))
    try:
        pd.Timestamp(2024, month, day)
    except ValueError:
        raise PlanningError(f"{where}: {text!r} is not a calendar date") from None
    return month * 100 + day


def _day_before(mmdd: int) -> int:
    t = pd.Timestamp(2023, mmdd // 100, mmdd % 100) - pd.Timedelta(days=1)
    return t.month * 100 + t.day


def tiered_tariff(starts: list[str], tiers: list[list[float]], name: str = "config") -> Tariff:
    """Dated tiers: tier i applies from starts[i] up to the day before starts[i+1] (the last wraps)."""
    if len(starts) != len(tiers) or not tiers:
        raise PlanningError(f"tariff {name}: {len(starts)} tier start(s) but {len(tiers)} price tier(s)")
    keys = [parse_mmdd(s, f"tariff.tier_starts[{i}]") for i, s in enumerate(starts)]
    if sorted(keys) != keys or len(set(keys)) != len(keys):
        raise PlanningError(f"tariff.tier_starts must be in calendar order: {starts}")
    rules = []
    for i, (k, prices) in enumerate(zip(keys, tiers, strict=True)):
        if len(prices) != 24:
            raise PlanningError(f"tariff {name}: tier {i + 1} has {len(prices)} prices, expected 24 (hours 0..23)")
        end = _day_before(keys[(i + 1) % len(keys)])
        rules.append(TariffRule(k, end, "ALL", tuple(float(p) for p in prices), f"tier {i + 1}"))
    return Tariff(name, rules)


def seed_tariff(customer: str) -> Tariff:
    tiers = SEED_RESIDENTIAL if customer == "residential" else SEED_BUSINESS
    return tiered_tariff(SEED_TIER_STARTS, tiers, f"seed {customer}")


def _segments_to_hours(times: list[float], prices: list[float]) -> tuple[float, ...]:
    hours = np.arange(24)
    idx = np.searchsorted(np.asarray(times, dtype=float), hours, side="right") - 1
    return tuple(float(np.asarray(prices)[max(i, 0)]) * 100.0 for i in idx)


def load_acnportal(doc: dict, name: str) -> Tariff:
    rules = []
    for entry in doc["schedule"]:
        rules.append(
            TariffRule(
                parse_mmdd(entry["effective_start"], f"{name}: {entry.get('id')}"),
                parse_mmdd(entry["effective_end"], f"{name}: {entry.get('id')}"),
                entry.get("dow_mask", "ALL"),
                _segments_to_hours(entry["times"], entry["tariffs"]),
                entry.get("id", ""),
            )
        )
    return Tariff(doc.get("name", name), rules)


def _urdb_rules(rec: dict) -> list[TariffRule]:
    """Rules of one URDB record: its date window, split by month (the schedules are month x hour)."""
    rate = [float(p[0].get("rate", 0.0)) + float(p[0].get("adj", 0.0) or 0.0) for p in rec["energyratestructure"]]
    start = pd.Timestamp(str(rec["startdate"])[:10]) if rec.get("startdate") else pd.Timestamp("2023-01-01")
    end = pd.Timestamp(str(rec["enddate"])[:10]) if rec.get("enddate") else start + pd.DateOffset(years=1, days=-1)
    if (end - start).days >= 365:
        end = start + pd.DateOffset(years=1, days=-1)
    rules = []
    for month_start in pd.date_range(start.replace(day=1), end, freq="MS"):
        lo = max(month_start, start)
        hi = min(month_start + pd.offsets.MonthEnd(0), end)
        for key, mask in (("energyweekdayschedule", "WEEKDAYS"), ("energyweekendschedule", "WEEKENDS")):
            sched = rec.get(key) or rec["energyweekdayschedule"]
            cents = tuple(rate[int(p)] * 100.0 for p in sched[month_start.month - 1])
            rules.append(
                TariffRule(lo.month * 100 + lo.day, hi.month * 100 + hi.day, mask, cents, f"{lo.date()}..{hi.date()}")
            )
    return rules


def load_urdb(records: list[dict], name: str) -> Tariff:
    """URDB records (tier-1 energy rate + adjustment, cents/kWh). When records span several years (rate
    revisions), the latest year's records are used; months they leave uncovered fall back to earlier ones."""
    recs = [r for r in records if r.get("energyratestructure") and r.get("energyweekdayschedule")]
    if not recs:
        raise PlanningError(f"{name}: no URDB record with energyratestructure/energyweekdayschedule")
    recs.sort(key=lambda r: str(r.get("startdate") or ""), reverse=True)
    rules: list[TariffRule] = []
    for rec in recs:
        rules.extend(_urdb_rules(rec))
    return Tariff(str(recs[0].get("name", name)), rules)


def load_tariff_file(path: str | Path) -> Tariff:
    """acnportal compact JSON or an OpenEI URDB record list, detected from the document's shape."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanningError(f"{p}: tariff file not found") from None
    except (OSError, json.JSONDecodeError) as err:
        raise PlanningError(f"{p}: not a readable JSON tariff ({err})") from None
    try:
        if isinstance(doc, dict) and "schedule" in doc:
            return load_acnportal(doc, p.stem)
        if isinstance(doc, dict) and "items" in doc:
            doc = doc["items"]
        if isinstance(doc, list):
            return load_urdb(doc, p.stem)
    except (KeyError, TypeError, IndexError, ValueError) as err:
        raise PlanningError(f"{p}: malformed tariff ({type(err).__name__}: {err})") from None
    raise PlanningError(f"{p}: neither an acnportal schedule nor an OpenEI URDB record list")


def tariff_from_config(cfg: TariffConfig, customer: str | None = None) -> Tariff:
    """``[tariff]``: a file when given, else configured tiers, else the seed study's prices."""
    if cfg.file is not None:
        return load_tariff_file(cfg.file)
    who = customer or cfg.customer
    tiers = cfg.residential if who == "residential" else cfg.business
    if tiers is None:
        tiers = SEED_RESIDENTIAL if who == "residential" else SEED_BUSINESS
    return tiered_tariff(list(cfg.tier_starts), tiers, f"config {who}")
