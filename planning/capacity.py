"""Spare service capacity under NEC 220.87, 220.57 and 625.42.

The rules, as numbers (all in kVA of the service; the meter gives kW, so kVA = kW / power_factor):

- 220.87: existing load = the measured maximum demand (a year of data; or, with 30 days to a year, the
  highest 15-minute average of the study), ALWAYS taken at 125%. This 125% is 220.87's own margin; it does
  not change with the overcurrent device.
- 220.57 (NEC 2020 and later): each EVSE counts at the larger of 7,200 W and its nameplate. Before 2020 the
  nameplate is used. ``[service] nec_edition`` names the edition (default 2023).
- 625.42 / 210.19 / 215.3: EVSE are continuous loads, counted at ``1 / continuous_load_factor`` of their
  220.57 load: 125% with standard-rated breakers (factor 0.8), 100% with 100%-rated equipment (factor 1.0).
  This factor is separate from the 220.87 125%, so 100%-rated equipment never lowers 220.87.
  ``chargers = floor((rating - 1.25 * max_demand) / (evse_load / cf)) - existing_evse``.
- With automatic load management (ALM): the EV load is what the ALM permits. An hourly EV limit ``L_t``
  keeps the site's continuous load within ``cf * rating``: ``L_t = cf * rating - building_t / pf``. The
  building load per hour comes from the measured year (``planning.pipeline``: every hour, or a stated
  percentile when the live controller catches the rest).

Demand interval: 220.87 asks for 15-minute demand. An hourly meter averages four 15-minute intervals, so its
maximum understates the 15-minute peak; the plan says so in its warnings.

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

NEC_220_57_MIN_KW = 7.2  # NEC 2020+: an EVSE counts at no less than 7,200 W (or its nameplate if larger)
NEC_220_87_FACTOR = 1.25  # the existing load's margin in 220.87, independent of the continuous-load factor


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
    nec_edition: int = 2023
    power_factor: float | None = None  # None: unknown, kW taken as kVA (1.0) and the plan warns

    @property
    def rating_kw(self) -> float:
        """Service rating (kVA: V x A, sqrt(3) for three-phase; equal to kW at unity power factor)."""
        return service_kw(self.rating_a, self.voltage_v, self.phases)

    @property
    def pf(self) -> float:
        return 1.0 if self.power_factor is None else self.power_factor

    @property
    def evse_kw(self) -> float:
        """EVSE nameplate in kW; a rating in A is single-phase at ``evse_voltage_v`` (a Level 2 EVSE)."""
        if self.evse_rating_kw is not None:
            return self.evse_rating_kw
        if self.evse_rating_a is None:
            raise PlanningError("service: give evse_rating_a or evse_rating_kw")
        return self.evse_rating_a * self.evse_voltage_v / 1000.0

    @property
    def evse_load_kw(self) -> float:
        """The EVSE's load in the calculation: 220.57 (2020+) max(7.2 kW, nameplate), else nameplate."""
        if self.nec_edition >= 2020:
            return max(NEC_220_57_MIN_KW, self.evse_kw)
        return self.evse_kw

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
            nec_edition=svc.nec_edition,
            power_factor=svc.power_factor,
        )

    def describe(self) -> str:
        ph = "3-phase" if self.phases == 3 else "1-phase"
        return f"{self.rating_a:g} A {self.voltage_v:g} V {ph} ({self.rating_kw:.1f} kVA)"


@dataclass
class MaxDemand:
    kw: float
    basis: str  # "1-year maximum demand" or "30-day study, highest 15-minute average"
    days: float
    at: str
    interval_min: float = 60.0  # the averaging interval of the maximum (15 when finer data was averaged)


def max_demand(kw: pd.Series) -> MaxDemand:
    """NEC 220.87 existing load from a cleaned series; refuses less than 30 days of data."""
    s = kw.dropna()
    if s.empty:
        raise PlanningError("no measured load to take a maximum demand from")
    days = (s.index[-1] - s.index[0]) / pd.Timedelta(days=1)
    step = pd.Timedelta(s.index.to_series().diff().median())
    if days >= 364:
        basis = "1-year maximum demand"
    elif days >= 29:
        basis = "30-day study, highest 15-minute average"
    else:
        raise PlanningError(
            f"only {days:.1f} days of data: NEC 220.87 needs a year of maximum demand or a 30-day study"
        )
    interval = step / pd.Timedelta(minutes=1)
    if step < pd.Timedelta(minutes=15):  # finer data: the 15-minute average is the demand
        s = s.resample("15min").mean().dropna()
        interval = 15.0
    at = s.idxmax()
    return MaxDemand(kw=float(s.max()), basis=basis, days=float(days), at=str(at), interval_min=float(interval))


@dataclass
class NecCapacity:
    rating_kw: float  # kVA of the service (V x A)
    max_demand_kw: float
    existing_load_kw: float  # 220.87: 125% of the maximum demand (in kVA: / power factor)
    spare_kw: float  # rating - existing load
    evse_kw: float  # nameplate
    evse_load_kw: float  # 220.57 load of one EVSE (edition-dependent)
    evse_counted_kw: float  # continuous: evse_load / continuous_load_factor
    chargers_without_lm: int
    alm_site_limit_kw: float  # cf * rating: building + managed EV load must stay under this every hour
    existing_over_rating: bool  # 125% of the measured maximum already exceeds the service: flag for review
    nec_edition: int = 2023
    factor_220_87: float = NEC_220_87_FACTOR
    continuous_load_factor: float = 0.8
    power_factor: float = 1.0
    formula: str = ""

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def nec_capacity(max_demand_kw: float, service: Service) -> NecCapacity:
    """220.87 + 220.57 + 625.42 numbers without load management (pure arithmetic, checked by hand in tests)."""
    pf = service.pf
    existing = NEC_220_87_FACTOR * max_demand_kw / pf
    spare = service.rating_kw - existing
    evse_counted = service.evse_load_kw / service.continuous_load_factor
    n = math.floor(spare / evse_counted + 1e-9) - service.existing_evse_count if spare > 0 else 0
    formula = (
        f"floor(({service.rating_kw:.1f} kVA - 1.25 x {max_demand_kw:.1f} kW / pf {pf:g}) / "
        f"({service.evse_load_kw:.2f} kW / {service.continuous_load_factor:g})) - {service.existing_evse_count}"
    )
    return NecCapacity(
        rating_kw=service.rating_kw,
        max_demand_kw=max_demand_kw,
        existing_load_kw=existing,
        spare_kw=spare,
        evse_kw=service.evse_kw,
        evse_load_kw=service.evse_load_kw,
        evse_counted_kw=evse_counted,
        chargers_without_lm=max(0, n),
        alm_site_limit_kw=service.continuous_load_factor * service.rating_kw,
        existing_over_rating=spare < 0,
        nec_edition=service.nec_edition,
        continuous_load_factor=service.continuous_load_factor,
        power_factor=pf,
        formula=formula,
    )


def check_within_rating(md: MaxDemand, service: Service, unit_in: str, name: str) -> None:
    """Measured demand above the service's own rating means the rating or the unit is wrong: say which.

    A building cannot draw more than its service for an hour without tripping its main breaker, so such a
    maximum is never planned on. A maximum over 20x the rating that fits once divided by 1000 reads as watts
    (the unit); anything else points at the rating.
    """
    kva = md.kw / service.pf
    if kva <= service.rating_kw:
        return
    where = f"{name}: measured maximum demand {md.kw:.1f} kW at {md.at} exceeds the {service.describe()} service"
    if kva > 20.0 * service.rating_kw and kva / 1000.0 <= service.rating_kw:
        raise PlanningError(
            f"{where}; read as {unit_in} this is {kva / service.rating_kw:.0f}x the rating, which fits values in "
            f"W or Wh: the UNIT is likely wrong. Check the meter's unit and give --unit W (or Wh)"
        )
    raise PlanningError(
        f"{where}: the service RATING is likely wrong (a building cannot draw more than its service). Check "
        f"[service] rating_a, voltage_v and phases (or [planning] rating_a_by_meter.{name}), and that the file "
        f"is in {unit_in} (--unit)"
    )


def alm_headroom(building_kw: np.ndarray, service: Service) -> np.ndarray:
    """Hourly EV power the ALM may permit: ``cf * rating - building_t / pf`` (may be negative: no headroom)."""
    return service.continuous_load_factor * service.rating_kw - np.asarray(building_kw, dtype=float) / service.pf
