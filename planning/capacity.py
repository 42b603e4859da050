"""Spare service capacity under NEC 220.87 and 625.42.

The rules, as numbers:

- 220.87: existing load = the measured maximum demand (a year of data; or, with 30 days to a year, the
  highest 15-minute average of the study), taken at 125%. New load fits when
  ``1.25 * max_demand + new_load <= service rating``.
- 625.42 without load management: each EVSE is a continuous load counted at 125% of its rating, so
  ``chargers = floor((rating - 1.25 * max_demand) / (1.25 * evse_kw)) - existing_evse``.
- 625.42 with automatic load management (ALM): the EV load is what the ALM permits. An hourly EV limit
  ``L_t`` keeps the site legal when ``1.25 * (building_t + L_t) <= rating`` at every hour, i.e.
  ``L_t = cf * rating - building_t`` with ``cf = continuous_load_factor`` (0.8 = 1/1.25). The building load
  per hour is the plan's baseload (cluster median or a percentile); the live controller still enforces the
  site limit against the measured load, so the plan's limit is an expectation, not the safety mechanism.

Existing EVSEs are taken at nameplate (125%) even though their measured draw is already inside the maximum
demand: conservative, and what an inspector will accept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from evsite.config import service_kw
from planning.errors import PlanningError


@dataclass(frozen=True)
class Service:
    """The electrical facts the NEC checks need (a plain copy of ``[service]``)."""

    rating_a: float
    voltage_v: float
    phases: int
    continuous_load_factor: float = 0.8
    evse_rating_a: float | None = 32.0
    evse_rating_kw: float | None = None
    evse_voltage_v: float = 208.0
    existing_evse_count: int = 0

    @property
    def rating_kw(self) -> float:
        return service_kw(self.rating_a, self.voltage_v, self.phases)

    @property
    def evse_kw(self) -> float:
        """EVSE rating in kW; a rating in A is single-phase at ``evse_voltage_v`` (a Level 2 EVSE)."""
        if self.evse_rating_kw is not None:
            return self.evse_rating_kw
        if self.evse_rating_a is None:
            raise PlanningError("service: give evse_rating_a or evse_rating_kw")
        return self.evse_rating_a * self.evse_voltage_v / 1000.0

    @classmethod
    def from_config(cls, svc) -> Service:
        return cls(
            rating_a=svc.rating_a,
            voltage_v=svc.voltage_v,
            phases=svc.phases,
            continuous_load_factor=svc.continuous_load_factor,
            evse_rating_a=svc.evse_rating_a,
            evse_rating_kw=svc.evse_rating_kw,
            evse_voltage_v=svc.evse_voltage_v,
            existing_evse_count=svc.existing_evse_count,
        )


@dataclass
class MaxDemand:
    kw: float
    basis: str  # "1-year maximum demand" or "30-day study, highest 15-minute average"
    days: float
    at: str


def max_demand(kw: pd.Series) -> MaxDemand:
    """NEC 220.87 existing load from a cleaned series; refuses less than 30 days of data."""
    s = kw.dropna()
    if s.empty:
        raise PlanningError("no measured load to take a maximum demand from")
    days = (s.index[-1] - s.index[0]) / pd.Timedelta(days=1)
    step = s.index.to_series().diff().median()
    if days >= 364:
        basis = "1-year maximum demand"
    elif days >= 29:
        basis = "30-day study, highest 15-minute average"
    else:
        raise PlanningError(
            f"only {days:.1f} days of data: NEC 220.87 needs a year of maximum demand or a 30-day study"
        )
    if pd.Timedelta(step) < pd.Timedelta(minutes=15):  # finer data: the 15-minute average is the demand
        s = s.resample("15min").mean().dropna()
    at = s.idxmax()
    return MaxDemand(kw=float(s.max()), basis=basis, days=float(days), at=str(at))


@dataclass
class NecCapacity:
    rating_kw: float
    max_demand_kw: float
    existing_load_kw: float  # 125% of the maximum demand
    spare_kw: float  # rating - existing load
    evse_kw: float
    evse_counted_kw: float  # 125% of the EVSE rating
    chargers_without_lm: int
    alm_site_limit_kw: float  # cf * rating: building + managed EV load must stay under this every hour
    existing_over_rating: bool  # 125% of the measured maximum already exceeds the service: flag for review

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def nec_capacity(max_demand_kw: float, service: Service) -> NecCapacity:
    """220.87 + 625.42 numbers without load management (pure arithmetic, checked by hand in tests)."""
    factor = 1.0 / service.continuous_load_factor
    existing = factor * max_demand_kw
    spare = service.rating_kw - existing
    evse_counted = factor * service.evse_kw
    n = math.floor(spare / evse_counted + 1e-9) - service.existing_evse_count if spare > 0 else 0
    return NecCapacity(
        rating_kw=service.rating_kw,
        max_demand_kw=max_demand_kw,
        existing_load_kw=existing,
        spare_kw=spare,
        evse_kw=service.evse_kw,
        evse_counted_kw=evse_counted,
        chargers_without_lm=max(0, n),
        alm_site_limit_kw=service.continuous_load_factor * service.rating_kw,
        existing_over_rating=spare < 0,
    )


def alm_headroom(building_kw: np.ndarray, service: Service) -> np.ndarray:
    """Hourly EV power the ALM may permit: ``cf * rating - building_t`` (may be negative: no headroom)."""
    return service.continuous_load_factor * service.rating_kw - np.asarray(building_kw, dtype=float)
