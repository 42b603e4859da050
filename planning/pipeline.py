"""One building end to end (clean -> profiles -> clusters -> NEC -> schedule), and many in parallel.

Why a plain-data result: ``BuildingPlan`` crosses a process boundary in a batch and becomes JSON, CSV, PNG
and an OCPP profile in ``planning.report``; it holds numbers only, never solver or sklearn objects.

The hourly EV ceiling load management reads is ONE key per building in ``plan.json``::

    "ev_ceiling_kw": {"tz": "<IANA zone>", "by_day_type": {"weekday": [24 floats], "weekend": [24 floats]}}

kW of EV power the whole site may draw in each local hour (hour 0 = 00:00-01:00 local wall clock), by day
type (Saturday and Sunday are "weekend"). It is ``cf x rating - load_t / pf`` where ``load_t`` is the highest
load of that hour on that day type over the measured year (``static_percentile`` = 100, the default), so the
schedule holds against every hour of the year; with a lower percentile the report says how many hours the
live controller must catch. On a DST change day the ceiling is read by local wall-clock hour: the skipped
hour is skipped and the repeated hour uses the same value twice (both are the same local hour).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from planning.capacity import Service, alm_headroom, check_within_rating, max_demand, nec_capacity
from planning.cleaning import clean_series
from planning.errors import PlanningError
from planning.ev_demand import DEFAULT_ENERGY_KWH_PER_CHARGER_DAY, EvDemand, demand_from_sessions
from planning.loadstudy import LoadStudy, daily_profiles, is_hourly_grid
from planning.meter import StudyLoadSeries
from planning.optimise import (
    Schedule,
    cross_check,
    energy_bound_chargers,
    solve_cost_gekko,
    solve_cost_highs,
)
from planning.seed_method import solve_seed
from planning.tariff import Tariff, tariff_from_config

if TYPE_CHECKING:
    from evsite.config import Config
    from planning.sessions import SessionPool

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
    ev_ceiling_kw: dict = field(default_factory=dict)  # THE key load management reads (see module docstring)
    static_check: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    solver_check: dict = field(default_factory=dict)
    service: dict = field(default_factory=dict)
    sizing: dict = field(default_factory=dict)
    chargers_with_lm_is_lower_bound: bool = False  # the sizing search stopped at [planning] max_chargers

    def chargers_with_lm_text(self) -> str:
        """The count as a person should read it: ">= 500" when the search limit was reached, not "500"."""
        if self.chargers_with_lm_is_lower_bound:
            return f">= {self.chargers_with_lm}"
        return str(self.chargers_with_lm)


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


def static_ceiling(
    series: pd.Series, service: Service, percentile: float = 100.0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """The static hourly EV ceiling by day type, and how it holds against every measured hour.

    ``load[type][h]`` = the ``percentile`` of the hourly load at local hour h over the days of that type (100:
    the maximum, so the ceiling ``cf x rating - load / pf`` holds at every measured hour). Returns the
    ceilings, the loads and a check counting the measured hours where building + ceiling would exceed the
    continuous limit (0 at percentile 100; otherwise the hours the live controller must catch).
    """
    if is_hourly_grid(pd.DatetimeIndex(series.index)):
        hourly = series.dropna()  # the cleaned grid is already hourly: its hourly means are its values
    else:
        hourly = series.resample("h").mean().dropna()
    weekend = hourly.index.day_of_week.to_numpy() >= 5
    hour_of = hourly.index.hour.to_numpy()
    values = hourly.to_numpy(dtype=float)
    limit = service.continuous_load_factor * service.rating_kw
    ceilings, loads = {}, {}
    over_total, hours_total, alone_total = 0, 0, 0
    for label, mask in (("weekday", ~weekend), ("weekend", weekend)):
        if not mask.any():
            mask = np.ones(values.size, dtype=bool)  # no day of this type measured: use every day (stated)
        h, hours = values[mask], hour_of[mask]
        if percentile >= 100.0:  # the default: the hour's maximum (a grouped quantile costs 10x more)
            load = np.full(24, -np.inf)
            np.maximum.at(load, hours, h)
            load[np.isneginf(load)] = np.nan
        else:
            load = pd.Series(h).groupby(hours).quantile(percentile / 100.0).reindex(range(24)).to_numpy()
        load = np.where(np.isfinite(load), load, float(h.max()))
        ceil = np.clip(alm_headroom(load, service), 0.0, None)
        alone = h / service.pf > limit + 1e-9  # the building alone: no EV ceiling can help
        over = ~alone & ((h / service.pf + ceil[hours]) > limit + 1e-9)
        over_total += int(over.sum())
        alone_total += int(alone.sum())
        hours_total += int(h.size)
        ceilings[label], loads[label] = ceil, load
    check = {
        "percentile": percentile,
        "measured_hours": hours_total,
        "hours_over_limit_if_static": over_total,
        "hours_building_alone_over_limit": alone_total,
        "holds_every_hour": over_total == 0,
        "statement": (
            "static schedule holds against every measured hour of the year"
            if over_total == 0
            else f"static schedule holds against the p{percentile:g} load; {over_total} of {hours_total} measured "
            f"hours would exceed the continuous limit: live load management must catch them"
        ),
    }
    return ceilings, loads, check


def _warn_inputs(rep, md, service: Service, meter: StudyLoadSeries) -> list[str]:
    warnings = []
    if service.power_factor is None:
        warnings.append(
            "power factor unknown ([service] power_factor): kW taken as kVA (1.0); at 0.9 the building's kVA "
            "is 11% higher and the spare capacity smaller"
        )
    if md.interval_min > 15:
        warnings.append(
            f"the meter is {md.interval_min:g}-minute: NEC 220.87 asks for 15-minute demand, and 15-minute peaks "
            f"are higher than {md.interval_min:g}-minute averages, so the maximum demand here is a lower bound"
        )
    if rep.outliers:
        warnings.append(f"{rep.outliers} reading(s) removed as spikes/dropouts (see cleaning.suspects)")
    if rep.suspects_kept:
        warnings.append(f"{rep.suspects_kept} suspect reading(s) kept (see cleaning.suspects)")
    if rep.export_readings:
        warnings.append(f"{rep.export_readings} net-export (negative) reading(s), lowest {rep.export_min_kw:.1f} kW")
    if meter.unit_in in ("Wh", "W"):
        warnings.append(f"meter values converted from {meter.unit_in}")
    return warnings


def session_pool_from_config(cfg: Config) -> SessionPool | None:
    """The real-session pool of the sizing simulation (``[planning] ev_sessions_file``), or None."""
    if cfg.planning.ev_sessions_file is None:
        return None
    from planning.sessions import load_sessions

    return load_sessions(cfg.planning.ev_sessions_file)


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
    sessions: SessionPool | None = None,
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
        keep_spikes=p.keep_spikes,
        allow_export=p.allow_export,
    )
    md = max_demand(series)
    rating_a = p.rating_a_by_meter.get(meter.name, cfg.service.rating_a)
    service = Service.from_config(cfg.service.model_copy(update={"rating_a": rating_a}))
    check_within_rating(md, service, meter.unit_in, meter.name)
    profiles, dropped = daily_profiles(series)
    rep.days_dropped = dropped
    t1 = timer()
    study = LoadStudy(k_min=p.k_min, k_max=p.k_max, random_state=p.random_state).fit(profiles, timer=timer)
    base = study.baseload(p.baseload, p.baseload_percentile)
    nec = nec_capacity(md.kw, service)
    ceilings, loads, check = static_ceiling(series, service, p.static_percentile)
    ceiling = np.minimum(ceilings["weekday"], ceilings["weekend"])  # the one daily schedule valid every day
    worst_load = np.maximum(loads["weekday"], loads["weekend"])
    btype = building_type or p.building_type
    if tariff is None:
        tariff = tariff_from_config(cfg.tariff, customer_for(btype, cfg.tariff.customer))
    prices = tariff.mean_prices(study.worst_days())
    ev = ev or ev_demand_from_config(cfg)
    t2 = timer()
    if ceiling.max() <= 0:
        raise PlanningError(
            f"{meter.name}: no headroom: in every hour the year's highest load leaves nothing under the continuous "
            f"limit ({service.continuous_load_factor:.0%} of the {service.describe()} service)"
        )
    extra_warn: list[str] = []
    solver_check: dict = {}
    highs_s = 0.0  # CPU of the HiGHS cross-checks (not a stage the seed runs: the benchmark reports it apart)
    if method == "seed":
        sched: Schedule = solve_seed(
            base,
            prices,
            curtailment=p.curtailment,
            x_min=p.setpoint_min_kw,
            x_max=p.setpoint_max_kw,
            safety=p.safety_factor,
        )
        th = timer()
        seed_highs = seed_objective_highs(base, prices, p)
        highs_s = timer() - th
        solver_check["seed_model"] = cross_check(sched.objective, seed_highs, "seed model")
        over = sched.power_kw - ceiling
        if (over > 1e-6).any():
            extra_warn.append(
                f"the seed model's schedule exceeds the service ceiling in {int((over > 1e-6).sum())} hour(s) by up "
                f"to {over.max():.1f} kW: the seed figures are reported in schedule_extra, the written limit is "
                f"clipped to cf x rating - load"
            )
        sched.extra["seed_power_kw"] = np.round(sched.power_kw, 3).tolist()
        sched.power_kw = np.minimum(sched.power_kw, ceiling)
        energy = float(sched.power_kw.sum())
    elif sessions is not None:  # the count comes from the sizing simulation below; GEKKO solves the cost model
        zeros = np.zeros(24)
        sched = Schedule("evsite", 0, zeros, zeros.astype(int), zeros, 0.0, 0.0, "gekko-apopt")
        energy = 0.0
    else:
        # The energy-bound count (no session data), in closed form (equal to the HiGHS MILP of
        # ``solve_evsite_milp``, tested). GEKKO solves the cost model below, and that is the solve every plan
        # cross-checks; a second GEKKO start-up here would double its fixed cost.
        zeros = np.zeros(24)
        n_bound = energy_bound_chargers(ceiling, ev.energy_kwh_per_charger_day, service.evse_kw, ev.occupancy)
        sched = Schedule("evsite", n_bound, zeros, zeros.astype(int), zeros, 0.0, 0.0, "gekko-apopt")
        if sched.chargers == 0:
            raise PlanningError(
                f"{meter.name}: no headroom for even one charger: the static ceiling "
                f"({ceiling.sum():.1f} kWh/day) cannot serve "
                f"{ev.energy_kwh_per_charger_day:.1f} kWh per charger in the plug-in hours"
            )
        energy = sched.chargers * ev.energy_kwh_per_charger_day
    t3 = timer()
    sizing: dict = {}
    chargers_with_lm = sched.chargers
    if sessions is not None and method != "seed":
        from planning.sizing import size_by_simulation

        sizing = size_by_simulation(series, service, sessions, p, max_n=p.max_chargers)
        chargers_with_lm = sizing["chargers"]
        energy = sizing["energy_kwh_per_day"]
        if chargers_with_lm == 0:
            raise PlanningError(
                f"{meter.name}: not even one charger meets the service level ({sizing['service_level_rule']}) "
                f"in the simulated year"
            )
    t4 = timer()
    cost = schedule_cost(
        ceiling,
        prices,
        worst_load / service.pf,
        energy,
        ev.occupancy,
        service,
        chargers_with_lm,
        cfg.tariff.demand_charge_usd_per_kw_month,
        method,
        timer=timer,
    )
    solver_check["cost_model"] = cost.pop("check")
    highs_s += cost.pop("highs_s")
    if method != "seed":
        sched.power_kw = np.asarray(cost["power_kw"])
    t5 = timer()
    warnings = _warn_inputs(rep, md, service, meter) + extra_warn
    if nec.existing_over_rating:
        warnings.append(
            f"125% of the measured maximum demand ({nec.existing_load_kw:.1f} kVA) exceeds the "
            f"{service.describe()} service: NEC 220.87 is not met before any EV load"
        )
    if ev.source.startswith("default"):
        warnings.append(f"EV demand is the default {ev.energy_kwh_per_charger_day:g} kWh per charger-day")
    if not sizing and method != "seed":
        warnings.append(
            f"chargers with LM from the energy bound ({ev.energy_kwh_per_charger_day:.1f} kWh per charger-day within "
            f"the plug-in hours, the static ceiling filled), not simulated: set [planning] ev_sessions_file"
        )
    if not check["holds_every_hour"]:
        warnings.append(check["statement"])
    at_limit = bool(sizing.get("at_search_limit", False))
    if at_limit:
        warnings.append(
            f"chargers with LM: >= {chargers_with_lm}: the service level still held at {sizing['searched_up_to']}, "
            f"the largest count the sizing simulation tries ([planning] max_chargers); the building may host more "
            f"(raise max_chargers to search further); cost and profiles assume {chargers_with_lm}"
        )

    x = profiles.to_numpy()
    idx = pd.DatetimeIndex(profiles.index)
    by_cluster = {
        str(c.label): alm_headroom(np.asarray(c.median_kw), service).round(3).tolist() for c in study.clusters_
    }
    power = np.asarray(sched.power_kw)
    if method == "seed":
        active = np.asarray(sched.active_chargers)
    else:
        active = np.minimum(np.ceil(power / service.evse_kw - 1e-9), max(chargers_with_lm, 0))
        sched.setpoint_kw = np.where(active > 0, power / np.maximum(active, 1), 0.0)
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
        profile_days=np.datetime_as_string(idx.to_numpy(), unit="D").tolist(),
        profiles_kw=np.round(x, 3).tolist(),
        baseload_kw=np.round(base, 3).tolist(),
        baseload_rule=p.baseload if p.baseload == "max_median" else f"p{p.baseload_percentile:g} of worst cluster",
        max_demand=md.__dict__,
        nec=nec.as_dict(),
        headroom_kw=np.round(ceiling, 3).tolist(),
        headroom_by_cluster=by_cluster,
        headroom_by_daytype={k: np.round(v, 3).tolist() for k, v in ceilings.items()},
        prices_cents=np.round(prices, 4).tolist(),
        tariff=tariff.name,
        ev={
            "energy_kwh_per_charger_day": ev.energy_kwh_per_charger_day,
            "occupancy": np.round(ev.occupancy, 4).tolist(),
            "source": ev.source,
        },
        method=method,
        chargers_with_lm=int(chargers_with_lm),
        schedule_kw=np.round(power, 4).tolist(),
        active_chargers=[int(v) for v in active],
        setpoint_kw=np.round(sched.setpoint_kw, 4).tolist(),
        cost_per_day=round(cost["total_per_day"], 4),
        solver=sched.solver,
        schedule_extra=sched.extra,
        timings={
            "ingest_s": t1 - t0,
            "silhouette_search_s": study.timings_.get("silhouette_search_s", 0.0),
            "kmeans_s": study.timings_.get("kmeans_s", 0.0),
            "capacity_s": (t2 - t1) - sum(study.timings_.values()),
            "optimisation_s": (t3 - t2) + (t5 - t4),
            "highs_cross_check_s": highs_s,
            "sizing_simulation_s": t4 - t3,
            "total_s": t5 - t0,
        },
        site_timezone=meter.site_tz,
        silhouette_final=round(study.silhouette_final_, 5),
        warnings=warnings,
        ev_ceiling_kw={
            "tz": meter.site_tz,
            "by_day_type": {k: np.round(v, 3).tolist() for k, v in ceilings.items()},
            "basis": check["statement"],
            "applies_to": "the whole site's EV power (all chargers together), kW, local wall-clock hours",
        },
        static_check=check,
        cost={k: v for k, v in cost.items() if k != "power_kw"},
        solver_check=solver_check,
        service={
            "rating_a": service.rating_a,
            "description": service.describe(),
            "rating_kva": round(service.rating_kw, 3),
            "continuous_limit_kw": round(service.continuous_load_factor * service.rating_kw, 3),
            "power_factor": service.pf,
            "power_factor_given": service.power_factor is not None,
            "nec_edition": service.nec_edition,
        },
        sizing=sizing,
        chargers_with_lm_is_lower_bound=at_limit,
    )


def schedule_cost(
    ceiling: np.ndarray,
    prices: np.ndarray,
    load_kw: np.ndarray,
    energy_kwh: float,
    occupancy: np.ndarray,
    service: Service,
    chargers: int,
    demand_charge: float,
    method: str,
    timer: Callable[[], float] = time.perf_counter,
) -> dict:
    """Cheapest hourly EV power for the day's energy (GEKKO, cross-checked by HiGHS), and a flat comparison.

    Capacity per hour: the static ceiling, and (evsite method) the plugged-in chargers' nameplate. The flat
    schedule spreads the same energy in proportion to that capacity (what filling the spare capacity does).
    """
    cap = np.asarray(ceiling, dtype=float)
    if method != "seed":
        cap = np.minimum(cap, service.evse_kw * np.asarray(occupancy) * max(chargers, 0))
    energy = min(float(energy_kwh), float(cap.sum()))
    g = solve_cost_gekko(cap, prices, load_kw, energy, demand_charge)
    th = timer()
    h = solve_cost_highs(cap, prices, load_kw, energy, demand_charge)
    highs_s = timer() - th
    check = cross_check(g.objective, h.objective, "cost model")
    flat = cap * (energy / cap.sum()) if cap.sum() > 0 else np.zeros(24)
    cheap = prices <= prices.min() + 1e-9
    return {
        "power_kw": g.power_kw,
        "energy_kwh_per_day": round(energy, 3),
        "energy_cost_per_day": round(g.energy_cost_per_day, 4),
        "demand_charge_per_day": round(g.demand_charge_per_day, 4),
        "demand_charge_usd_per_kw_month": demand_charge,
        "total_per_day": g.energy_cost_per_day + g.demand_charge_per_day,
        "flat_energy_cost_per_day": round(float(prices @ flat) / 100.0, 4),
        "cheap_hours": [int(t) for t in np.flatnonzero(cheap)],
        "cheap_hour_share_of_ev_energy": round(float(g.power_kw[cheap].sum() / energy), 4) if energy > 0 else 0.0,
        "cheap_hour_share_of_capacity": round(float(cap[cheap].sum() / cap.sum()), 4) if cap.sum() > 0 else 0.0,
        "assumes": "prices: mean of the worst cluster's days; energy: the day's EV energy of the charger count",
        "check": check,
        "highs_s": highs_s,  # how long the cross-check took (timings, not the report)
    }


def seed_objective_highs(base: np.ndarray, prices: np.ndarray, p) -> float:
    """The seed model (``planning.seed_method``) as a HiGHS MILP: the cross-check of its GEKKO objective."""
    from planning.seed_method import seed_milp

    return seed_milp(
        base,
        prices,
        curtailment=p.curtailment,
        x_min=p.setpoint_min_kw,
        x_max=p.setpoint_max_kw,
        safety=p.safety_factor,
    )


def _plan_one(args: tuple) -> BuildingPlan | BuildingFailure:
    meter, cfg, ev, btype, area, method, post, pool = args
    try:
        plan = plan_building(meter, cfg, ev=ev, building_type=btype, area_m2=area, method=method, sessions=pool)
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
    finished: list[BuildingPlan | BuildingFailure] | None = None,
) -> list[BuildingPlan | BuildingFailure]:
    """Plan every meter point, in parallel across ``workers`` processes, with a rich progress bar.

    A building that cannot be planned becomes a ``BuildingFailure`` (with the operator message); the others
    still complete. Results keep the input order. ``post`` (a picklable function, e.g. the plot writer) runs
    on each plan inside its worker, so plotting is parallel too. ``finished`` (when given) gets each result as
    it completes, so a caller interrupted by Ctrl-C can still show what was done.
    """
    ev = ev_demand_from_config(cfg)
    pool = session_pool_from_config(cfg)
    types, areas = types or {}, areas or {}
    jobs = [(m, cfg, ev, types.get(m.name), areas.get(m.name), method, post, pool) for m in meters]
    n_workers = max(1, min(workers or cfg.planning.workers, len(jobs)))
    results: list[BuildingPlan | BuildingFailure | None] = [None] * len(jobs)

    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # Not a terminal (CI, a log file): plain lines, one per finished building, instead of a redrawn bar.
    plain = progress and not sys.stderr.isatty()
    columns = (TextColumn("planning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    done = 0

    def advance(bar: Progress, task, i: int) -> None:
        nonlocal done
        done += 1
        if finished is not None:
            finished.append(results[i])  # type: ignore[arg-type]
        if plain:
            print(f"planning {done}/{len(jobs)}: {jobs[i][0].name}", file=sys.stderr, flush=True)
        else:
            bar.advance(task)

    with Progress(*columns, disable=not progress or plain, transient=False) as bar:
        task = bar.add_task("plan", total=len(jobs))
        if n_workers == 1:
            for i, job in enumerate(jobs):
                results[i] = _plan_one(job)
                advance(bar, task, i)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # forkserver/spawn would re-import numpy, sklearn and gekko per worker; fork is cheap on Linux, and
            # importing the heavy libraries once here lets every forked worker share them.
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            if ctx is not None:
                import gekko  # noqa: F401
                import sklearn.cluster  # noqa: F401
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as executor:
                futures = {executor.submit(_plan_one, job): i for i, job in enumerate(jobs)}
                try:
                    for fut in as_completed(futures):
                        results[futures[fut]] = fut.result()
                        advance(bar, task, futures[fut])
                except KeyboardInterrupt:  # start nothing more; the buildings in progress still end
                    executor.shutdown(wait=False, cancel_futures=True)
                    raise
    return [r for r in results if r is not None]
