"""A pool of real charging sessions to draw from, scaled to any charger count (for the sizing simulation).

Why draw from real sessions: how many chargers a building can host with load management depends on when cars
arrive, how long they stay and how much energy they want, together. A pool keeps those three as they occurred
(one row per real session) and the rate per charger-day, by day type, scales the arrivals to ``n`` chargers.

Layout: the ACN-Data CSV (``connectionTime_utc``, ``disconnectTime_utc``, ``kWhDelivered``, ``stationID``,
``timezone``). The energy a session wants is what it was delivered (``kWhDelivered``): what the car took in
its stay; a request above what the charger's nameplate can give in the stay is capped at that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from planning.errors import PlanningError


@dataclass(frozen=True)
class SessionPool:
    arrival_h: np.ndarray  # local hour of day of the arrival (fractional)
    duration_h: np.ndarray
    energy_kwh: np.ndarray
    weekend: np.ndarray  # bool: the session arrived on a Saturday or Sunday
    rate_per_charger_day: dict[str, float]  # sessions per charger per day, by day type
    source: str

    @property
    def energy_kwh_per_charger_day(self) -> float:
        """Mean daily energy per charger (5 weekdays, 2 weekend days), for the report."""
        e = {
            k: float(self.energy_kwh[self.weekend == (k == "weekend")].mean() or 0.0) for k in self.rate_per_charger_day
        }
        r = self.rate_per_charger_day
        return (5 * r["weekday"] * e["weekday"] + 2 * r["weekend"] * e["weekend"]) / 7.0


def read_session_csv(path: str | Path, local_tz: str | None = None) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """An ACN-style session CSV and its connection / disconnection times on the local wall clock (naive).

    The zone is ``local_tz``, else the file's ``timezone`` column, else UTC. Unparseable times are NaT; each
    caller decides which rows it can use. PlanningError naming the file when it cannot be read at all.
    """
    p = Path(path)
    try:
        df = pd.read_csv(p)
    except FileNotFoundError:
        raise PlanningError(f"{p}: EV session file not found") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise PlanningError(f"{p}: not a readable session CSV ({err})") from None
    need = {"connectionTime_utc", "disconnectTime_utc", "kWhDelivered", "stationID"}
    if not need <= set(df.columns):
        raise PlanningError(f"{p}: EV session file needs columns {sorted(need)}")
    tz = local_tz or (str(df["timezone"].iloc[0]) if "timezone" in df.columns else "UTC")
    arr = pd.to_datetime(df["connectionTime_utc"], utc=True, errors="coerce").dt.tz_convert(tz).dt.tz_localize(None)
    dep = pd.to_datetime(df["disconnectTime_utc"], utc=True, errors="coerce").dt.tz_convert(tz).dt.tz_localize(None)
    return df, arr, dep


def load_sessions(path: str | Path, local_tz: str | None = None) -> SessionPool:
    """Read an ACN-style session CSV into a pool; PlanningError naming the file on any problem."""
    p = Path(path)
    df, arr, dep = read_session_csv(p, local_tz)
    kwh = pd.to_numeric(df["kWhDelivered"], errors="coerce")
    ok = arr.notna() & dep.notna() & (dep > arr) & (kwh > 0)
    if ok.sum() == 0:
        raise PlanningError(f"{p}: no session with valid arrival, departure and energy")
    arr, dep, kwh = arr[ok], dep[ok], kwh[ok]
    stations = df.loc[ok, "stationID"].nunique()
    days = pd.date_range(arr.min().normalize(), arr.max().normalize(), freq="D")
    day_weekend = days.day_of_week >= 5
    weekend = (arr.dt.day_of_week >= 5).to_numpy()
    rate = {
        "weekday": float((~weekend).sum() / (stations * max(1, (~day_weekend).sum()))),
        "weekend": float(weekend.sum() / (stations * max(1, day_weekend.sum()))),
    }
    return SessionPool(
        arrival_h=(arr.dt.hour + arr.dt.minute / 60 + arr.dt.second / 3600).to_numpy(dtype=float),
        duration_h=((dep - arr) / pd.Timedelta(hours=1)).to_numpy(dtype=float),
        energy_kwh=kwh.to_numpy(dtype=float),
        weekend=weekend,
        rate_per_charger_day=rate,
        source=f"{p.name}: {int(ok.sum())} sessions, {stations} stations, {len(days)} days",
    )
