"""One building end to end (clean -> profiles -> clusters -> NEC -> schedule), and many in parallel.

Why a plain-data result: ``BuildingPlan`` crosses a process boundary in a batch and becomes JSON, CSV, PNG
and an OCPP profile in ``planning.report``; it holds numbers only, never solver or sklearn objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from planning.capacity import Service, alm_headroom, max_demand, nec_capacity
from planning.cleaning import clean_series
from planning.errors import PlanningError
from planning.ev_demand import DEFAULT_ENERGY_KWH_PER_CHARGER_DAY, EvDemand, demand_from_sessions
from planning.loadstudy import LoadStudy, daily_profiles
from planning.meter import StudyLoadSeries
from planning.optimise import Schedule, solve_evsite_gekko
from planning.seed_method import solve_seed
from planning.tariff import Tariff, tariff_from_config

if TYPE_CHECKING:
    from evsite.config import Config

RESIDENTIAL_WORDS = ("residential", "multifamily", "apartment", "home", "house")


@dataclass
class BuildingPlan:
    """Everything the reports need about one meter point (plain data)."""

    name: str
    building_type: str | None
    area_m2: float | None
    cleaning: dict
    days: int
    k: int
    silhouette: dict[int, float]
    clusters: list[dict]
    labels: list[int]
    profile_days: list[str]
    profiles_kw: list[list[float]]
    baseload_kw: list[float]
    baseload_rule: str
    max_demand: dict
    nec: dict
    headroom_kw: list[float]
    headroom_by_cluster: dict[str, list[float]]
    headroom_by_daytype: dict[str, list[float]]
    prices_cents: list[float]
    tariff: str
    ev: dict
    method: str
    chargers_with_lm: int
    schedule_kw: list[float]
    active_chargers: list[int]
    setpoint_kw: list[float]
    cost_per_day: float
    solver: str
    schedule_extra: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    site_timezone: str | None = None
    silhouette_final: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class BuildingFailure:
    name: str
    error: str


def customer_for(building_type: str | None, default: str) -> str:
    """The seed's rule: multifamily/residential buildings pay residential prices, all others business."""
    if building_type and any(w in building_type.lower() for w in RESIDENTIAL_WORDS):
        return "residential"
    return default


def ev_demand_from_config(cfg: Config) -> EvDemand:
    p = cfg.planning
    if p.ev_sessions_file is not None:
        ev = demand_from_sessions(p.ev_sessions_file)
        if p.ev_energy_kwh_per_day is not None:
            ev = EvDemand(p.ev_energy_kwh_per_day, ev.occupancy, ev.source + " (energy from config)")
        return ev
    if p.ev_energy_kwh_per_day is not None:
        return EvDemand(p.ev_energy_kwh_per_day, np.ones(24), "config")
    return EvDemand(DEFAULT_ENERGY_KWH_PER_CHARGER_DAY, np.ones(24), "default (no session data configured)")


def plan_building(
    meter: StudyLoadSeries,
    cfg: Config,
    *,
    ev: EvDemand | None = None,
    tariff: Tariff | None = None,
    building_type: str | None = None,
    area_m2: float | None = None,
    method: str | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> BuildingPlan:
    """Plan one meter point. Raises PlanningError (operator-facing) for unusable data or no headroom."""
    p = cfg.planning
    method = method or p.method
    t0 = timer()
    series, rep = clean_series(
        meter.kw,
        site_tz=meter.site_tz,
        zero_run_min_h=p.zero_run_min_h,
        outlier_k=p.outlier_k,
        max_fill_h=p.max_fill_h,
        name=meter.name,
    )
    md = max_demand(series)
    profiles, dropped = daily_profiles(series)
    rep.days_dropped = dropped
    t1 = timer()
    study = LoadStudy(k_min=p.k_min, k_max=p.k_max, random_state=p.random_state).fit(profiles, timer=timer)
    base = study.baseload(p.baseload, p.baseload_percentile)
    rating_a = p.rating_a_by_meter.get(meter.name, cfg.service.rating_a)
    service = Service.from_config(cfg.service.model_copy(update={"rating_a": rating_a}))
    nec = nec_capacity(md.kw, service)
    headroom = alm_headroom(base, service)
    btype = building_type or p.building_type
    if tariff is None:
        tariff = tariff_from_config(cfg.tariff, customer_for(btype, cfg.tariff.customer))
    prices = tariff.mean_prices(study.worst_days())
    ev = ev or ev_demand_from_config(cfg)
    t2 = timer()
    if method == "seed":
        sched: Schedule = solve_seed(
            base,
            prices,
            curtailment=p.curtailment,
            x_min=p.setpoint_min_kw,
            x_max=p.setpoint_max_kw,
            safety=p.safety_factor,
        )
    else:
        if headroom.max() <= 0:
            raise PlanningError(
                f"{meter.name}: no headroom: even the lowest baseload hour ({base.min():.1f} kW) is at or above "
                f"the continuous limit ({service.continuous_load_factor:.0%} of the {service.rating_kw:.1f} kW service)"
            )
        sched = solve_evsite_gekko(headroom, prices, ev.energy_kwh_per_charger_day, service.evse_kw, ev.occupancy)
        if sched.chargers == 0:
            raise PlanningError(
                f"{meter.name}: no headroom for even one charger: the ALM headroom "
                f"({np.clip(headroom, 0, None).sum():.1f} kWh/day) cannot serve "
                f"{ev.energy_kwh_per_charger_day:.1f} kWh per charger in the plug-in hours"
            )
    t3 = timer()
    warnings = []
    if nec.existing_over_rating:
        warnings.append(
            f"125% of the measured maximum demand ({nec.existing_load_kw:.1f} kW) already exceeds the "
            f"{nec.rating_kw:.1f} kW service: NEC 220.87 is not met before any EV load; the managed plan rests on "
            f"the {p.baseload} baseload and the live controller's limit"
        )
    if ev.source.startswith("default"):
        warnings.append(f"EV demand is the default {ev.energy_kwh_per_charger_day:g} kWh per charger-day")

    x = profiles.to_numpy()
    idx = pd.DatetimeIndex(profiles.index)
    weekend = idx.day_of_week >= 5
    by_cluster = {
        str(c.label): alm_headroom(np.asarray(c.median_kw), service).round(3).tolist() for c in study.clusters_
    }
    by_daytype = {}
    for label, mask in (("weekday", ~weekend), ("weekend", weekend)):
        if mask.any():
            by_daytype[label] = alm_headroom(np.median(x[mask], axis=0), service).round(3).tolist()
    return BuildingPlan(
        name=meter.name,
        building_type=btype,
        area_m2=area_m2 if area_m2 is not None else p.floor_area_m2,
        cleaning=rep.as_dict(),
        days=len(profiles),
        k=study.k_,
        silhouette={int(k): round(v, 5) for k, v in study.silhouette_.items()},
        clusters=[c.__dict__ for c in study.clusters_],
        labels=study.labels_.tolist(),
        profile_days=[str(d.date()) for d in idx],
        profiles_kw=np.round(x, 3).tolist(),
        baseload_kw=np.round(base, 3).tolist(),
        baseload_rule=p.baseload if p.baseload == "max_median" else f"p{p.baseload_percentile:g} of worst cluster",
        max_demand=md.__dict__,
        nec=nec.as_dict(),
        headroom_kw=np.round(headroom, 3).tolist(),
        headroom_by_cluster=by_cluster,
        headroom_by_daytype=by_daytype,
        prices_cents=np.round(prices, 4).tolist(),
        tariff=tariff.name,
        ev={
            "energy_kwh_per_charger_day": ev.energy_kwh_per_charger_day,
            "occupancy": np.round(ev.occupancy, 4).tolist(),
            "source": ev.source,
        },
        method=method,
        chargers_with_lm=sched.chargers,
        schedule_kw=np.round(sched.power_kw, 4).tolist(),
        active_chargers=[int(v) for v in sched.active_chargers],
        setpoint_kw=np.round(sched.setpoint_kw, 4).tolist(),
        cost_per_day=round(sched.cost_per_day, 4),
        solver=sched.solver,
        schedule_extra=sched.extra,
        timings={
            "ingest_s": t1 - t0,
            "silhouette_search_s": study.timings_.get("silhouette_search_s", 0.0),
            "kmeans_s": study.timings_.get("kmeans_s", 0.0),
            "optimisation_s": t3 - t2,
            "total_s": t3 - t0,
        },
        site_timezone=meter.site_tz,
        silhouette_final=round(study.silhouette_final_, 5),
        warnings=warnings,
    )


def _plan_one(args: tuple) -> BuildingPlan | BuildingFailure:
    meter, cfg, ev, btype, area, method, post = args
    try:
        plan = plan_building(meter, cfg, ev=ev, building_type=btype, area_m2=area, method=method)
    except PlanningError as err:
        return BuildingFailure(meter.name, str(err))
    if post is not None:
        post(plan)
    return plan


def plan_many(
    meters: Sequence[StudyLoadSeries],
    cfg: Config,
    *,
    types: dict[str, str] | None = None,
    areas: dict[str, float] | None = None,
    method: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    post: Callable[[BuildingPlan], object] | None = None,
) -> list[BuildingPlan | BuildingFailure]:
    """Plan every meter point, in parallel across ``workers`` processes, with a rich progress bar.

    A building that cannot be planned becomes a ``BuildingFailure`` (with the operator message); the others
    still complete. Results keep the input order. ``post`` (a picklable function, e.g. the plot writer) runs
    on each plan inside its worker, so plotting is parallel too.
    """
    ev = ev_demand_from_config(cfg)
    types, areas = types or {}, areas or {}
    jobs = [(m, cfg, ev, types.get(m.name), areas.get(m.name), method, post) for m in meters]
    n_workers = max(1, min(workers or cfg.planning.workers, len(jobs)))
    results: list[BuildingPlan | BuildingFailure | None] = [None] * len(jobs)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("planning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("plan", total=len(jobs))
        if n_workers == 1:
            for i, job in enumerate(jobs):
                results[i] = _plan_one(job)
                bar.advance(task)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # forkserver/spawn would re-import numpy, sklearn and gekko per worker; fork is cheap on Linux, and
            # importing the heavy libraries once here lets every forked worker share them.
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            if ctx is not None:
                import gekko  # noqa: F401
                import sklearn.cluster  # noqa: F401
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                futures = {pool.submit(_plan_one, job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.advance(task)
    return [r for r in results if r is not None]
