"""Expected EV demand per charger: daily energy and the hourly share of chargers with a car plugged in.

Why per charger: the planner chooses the number of chargers, so demand must scale with it. From a session
log (ACN-Data layout: ``connectionTime_utc``, ``disconnectTime_utc``, ``kWhDelivered``, ``stationID``,
``timezone``) the energy is ``total kWh / (stations x days)`` and the occupancy at local hour t is the mean
fraction of stations with a session connected at that hour. Without a log, config gives the energy and every
hour counts as available (occupancy 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from planning.errors import PlanningError
from planning.sessions import read_session_csv

DEFAULT_ENERGY_KWH_PER_CHARGER_DAY = 10.0


@dataclass
class EvDemand:
    energy_kwh_per_charger_day: float
    occupancy: np.ndarray = field(default_factory=lambda: np.ones(24))  # fraction of chargers plugged in
    source: str = "default"

    def __post_init__(self) -> None:
        self.occupancy = np.clip(np.asarray(self.occupancy, dtype=float), 0.0, 1.0)
        if self.occupancy.shape != (24,):
            raise PlanningError(f"EV occupancy needs 24 hourly values (got {self.occupancy.shape})")
        if not self.energy_kwh_per_charger_day > 0:
            raise PlanningError("EV energy per charger per day must be > 0 kWh")


def demand_from_sessions(path: str | Path, local_tz: str | None = None) -> EvDemand:
    """Per-charger daily energy and hourly occupancy from an ACN-style session CSV."""
    p = Path(path)
    df, arr, dep = read_session_csv(p, local_tz)
    ok = arr.notna() & dep.notna() & (dep > arr)
    if ok.sum() == 0:
        raise PlanningError(f"{p}: no session with valid arrival and departure times")
    arr, dep, kwh = arr[ok], dep[ok], df.loc[ok, "kWhDelivered"].astype(float)
    stations = df.loc[ok, "stationID"].nunique()
    start, end = arr.min().floor("D"), dep.max().ceil("D")
    days = max(1.0, (end - start) / pd.Timedelta(days=1))
    grid = pd.date_range(start, end, freq="h")
    # +1 at the arrival hour, -1 at the departure hour, cumsum: sessions connected at each hour (vectorised).
    delta = np.zeros(len(grid) + 1)
    np.add.at(delta, grid.searchsorted(arr.dt.floor("h")), 1.0)
    np.add.at(delta, grid.searchsorted(dep.dt.floor("h")), -1.0)
    active = np.cumsum(delta)[:-1]
    occ = pd.Series(active / stations, index=grid).groupby(grid.hour).mean().reindex(range(24), fill_value=0.0)
    return EvDemand(
        energy_kwh_per_charger_day=float(kwh.sum() / (stations * days)),
        occupancy=occ.to_numpy(),
        source=f"{p.name}: {int(ok.sum())} sessions, {stations} stations, {days:.0f} days",
    )
