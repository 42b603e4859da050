"""Plan outputs: the JSON report, the CSV building table, PNG plots and the per-charger OCPP 1.6 profile.

What the controller applies is the SITE total: ``plan.json`` -> ``buildings[i].ev_ceiling_kw`` (see
``planning.pipeline``), read by load management, which shares it among the connected cars. A
``ChargePointMaxProfile`` in OCPP 1.6 limits ONE charge point, so the written ``ocpp_profile*.json`` is the
static fallback for a charger without live load management: the site ceiling divided by the planned charger
count (so N chargers obeying it never exceed the site ceiling), kind ``Recurring``, recurrency ``Daily``, 24
one-hour periods in W, the lower of the weekday and weekend ceilings.

Time zone and DST: a profile needs the site's time zone (``--tz`` / ``[planning] site_timezone``); without
one none is written (UTC is never assumed: give ``--tz UTC`` when the site really runs on UTC).
``startSchedule`` is a local midnight in UTC, and a Daily recurrence repeats every 24 h of UTC, so after a
DST change the periods fall one local hour early or late. Each written limit is therefore the lowest of its
own hour and the two neighbouring hours: shifted by one hour either way, no limit ever exceeds the plan. The
controller re-sends the profile after each re-plan.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from planning.errors import PlanningError
from planning.pipeline import BuildingFailure, BuildingPlan

CSV_COLUMNS = [
    "building",
    "type",
    "area_m2",
    "max_demand_kw",
    "max_demand_at",
    "service",
    "chargers_without_lm",
    "chargers_with_lm",
    "cost_per_day_usd",
    "warnings",
    "method",
    "k",
    "days",
    "error",
]
_BULKY = ("profiles_kw", "labels", "profile_days")


def ocpp_profile(
    plan: BuildingPlan,
    *,
    start_date: str | None = None,
    purpose: str = "ChargePointMaxProfile",
    profile_id: int = 1,
    stack_level: int = 0,
    chargers: int = 1,
) -> dict:
    """One charger's share of the site EV ceiling as an OCPP 1.6 ``ChargingProfile`` (JSON-able, camelCase).

    ``chargers``: how many chargers share the ceiling (the profile is ceiling / chargers). Raises PlanningError
    when the plan has no site time zone (see the module docstring).
    """
    if purpose not in ("ChargePointMaxProfile", "TxDefaultProfile"):
        raise ValueError(f"purpose must be ChargePointMaxProfile or TxDefaultProfile (got {purpose!r})")
    if not plan.site_timezone:
        raise PlanningError(
            f"{plan.name}: no site time zone: an OCPP profile's hours would be UTC hours; give --tz or "
            f"[planning] site_timezone (--tz UTC if the site really runs on UTC)"
        )
    day = pd.Timestamp(start_date) if start_date else pd.Timestamp(plan.profile_days[-1]) + pd.Timedelta(days=1)
    midnight = day.normalize().tz_localize(plan.site_timezone).tz_convert("UTC")
    by_type = plan.ev_ceiling_kw.get("by_day_type") or {"all": plan.headroom_kw}
    ceiling = np.min(np.array(list(by_type.values()), dtype=float), axis=0)
    # DST-safe: the lowest of each hour and its neighbours, so a one-hour shift never raises a limit.
    safe = np.minimum(ceiling, np.minimum(np.roll(ceiling, 1), np.roll(ceiling, -1)))
    share = safe / max(1, chargers)
    # Whole watts, rounded down: never above the plan, and exactly a multiple of 0.1 as the schema's
    # ``multipleOf: 0.1`` demands (a float such as 78890.9 fails that check in binary floating point).
    periods = [
        {"startPeriod": 3600 * t, "limit": max(0, math.floor(float(kw) * 1000.0 + 1e-6))} for t, kw in enumerate(share)
    ]
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Recurring",
        "recurrencyKind": "Daily",
        "chargingSchedule": {
            "duration": 86400,
            "startSchedule": midnight.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": periods,
        },
    }


def load_ocpp_profile(path: str | Path) -> dict:
    """Read a profile written by ``evsite plan`` (for load management), checking the shape it relies on.

    Raises PlanningError naming the file and the problem; returns the ``ChargingProfile`` dict unchanged.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanningError(f"{p}: charging profile not found (run `evsite plan` first)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise PlanningError(f"{p}: not a readable JSON charging profile ({err})") from None
    try:
        sched = doc["chargingSchedule"]
        periods = sched["chargingSchedulePeriod"]
        ok = (
            doc["chargingProfileKind"] == "Recurring"
            and doc["recurrencyKind"] == "Daily"
            and sched["chargingRateUnit"] in ("W", "A")
            and [q["startPeriod"] for q in periods] == sorted({q["startPeriod"] for q in periods})
            and periods[0]["startPeriod"] == 0
            and all(float(q["limit"]) >= 0 for q in periods)
        )
    except (KeyError, TypeError, IndexError, ValueError) as err:
        raise PlanningError(f"{p}: not an OCPP 1.6 ChargingProfile ({type(err).__name__}: {err})") from None
    if not ok:
        raise PlanningError(f"{p}: expected a Daily Recurring profile with ordered, non-negative periods from 0 s")
    return doc


def plan_to_dict(plan: BuildingPlan) -> dict:
    d = asdict(plan)
    for key in _BULKY:
        d.pop(key, None)
    d["silhouette"] = {str(k): v for k, v in plan.silhouette.items()}
    return d


def csv_row(r: BuildingPlan | BuildingFailure) -> dict:
    if isinstance(r, BuildingFailure):
        return {c: "" for c in CSV_COLUMNS} | {"building": r.name, "error": r.error}
    return {
        "building": r.name,
        "type": r.building_type or "",
        "area_m2": "" if r.area_m2 is None else r.area_m2,
        "max_demand_kw": round(r.max_demand["kw"], 2),
        "max_demand_at": r.max_demand["at"],
        "service": r.service.get("description", ""),
        "chargers_without_lm": r.nec["chargers_without_lm"],
        "chargers_with_lm": r.chargers_with_lm_text(),
        "cost_per_day_usd": round(r.cost_per_day, 2),
        "warnings": " | ".join(r.warnings),
        "method": r.method,
        "k": r.k,
        "days": r.days,
        "error": "",
    }


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "meter"


def write_outputs(
    results: Sequence[BuildingPlan | BuildingFailure],
    out_dir: Path,
    *,
    meta: dict,
    purpose: str = "ChargePointMaxProfile",
) -> dict[str, Path]:
    """Write plan.json, buildings.csv and one OCPP profile per planned building; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = [r for r in results if isinstance(r, BuildingPlan)]
    fails = [r for r in results if isinstance(r, BuildingFailure)]
    paths: dict[str, Path] = {}
    profiles: dict[str, str | None] = {}
    for p in plans:
        if not p.site_timezone:
            profiles[p.name] = None
            msg = "no OCPP profile written: no site time zone (--tz or [planning] site_timezone; UTC is not assumed)"
            if msg not in p.warnings:
                p.warnings.append(msg)
            continue
        prof = ocpp_profile(p, purpose=purpose, chargers=max(1, p.chargers_with_lm))
        name = "ocpp_profile.json" if len(results) == 1 else f"ocpp_profile_{safe_name(p.name)}.json"
        path = out_dir / name
        path.write_text(json.dumps(prof, indent=2) + "\n", encoding="utf-8")
        profiles[p.name] = name
        paths[f"profile:{p.name}"] = path
    doc = {
        **meta,
        "buildings": [plan_to_dict(p) | {"ocpp_profile_file": profiles[p.name]} for p in plans],
        "failures": [asdict(f) for f in fails],
    }
    paths["json"] = out_dir / "plan.json"
    paths["json"].write_text(json.dumps(doc, indent=1, default=_json_default) + "\n", encoding="utf-8")
    paths["csv"] = out_dir / "buildings.csv"
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in results:
            w.writerow(csv_row(r))
    return paths


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_plots(plan: BuildingPlan, out_dir: Path) -> list[Path]:
    """Four PNGs per building: clustered daily profiles with medians, silhouette curve, capacity and schedule,
    chargers per hour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(out_dir) / "plots" / safe_name(plan.name)
    folder.mkdir(parents=True, exist_ok=True)
    hours = np.arange(24)
    x = np.asarray(plan.profiles_kw)
    labels = np.asarray(plan.labels)
    paths = []

    k = len(plan.clusters)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3), sharey=True, squeeze=False)
    for ax, c in zip(axes[0], plan.clusters, strict=True):
        days = x[labels == c["label"]]
        # All days as ONE line broken by NaNs: hundreds of Line2D objects made this plot take seconds.
        xs = np.tile(np.r_[hours, np.nan], len(days))
        ys = np.hstack([days, np.full((len(days), 1), np.nan)]).ravel()
        ax.plot(xs, ys, color="0.7", lw=0.4, alpha=0.5)
        ax.plot(hours, c["median_kw"], color="C3", lw=2, label="median")
        ax.set_title(f"cluster {c['label']}: {c['size']} d ({c['weekday_days']} wd/{c['weekend_days']} we)", fontsize=8)
        ax.set_xlabel("hour")
    axes[0][0].set_ylabel("kW")
    axes[0][0].set_ylim(bottom=0)
    fig.suptitle(f"{plan.name} on {plan.service.get('description', '')}: daily profiles by cluster (k={plan.k})")
    fig.subplots_adjust(left=max(0.03, 0.9 / (3.2 * k)), right=0.99, bottom=0.16, top=0.8, wspace=0.08)
    paths.append(folder / "profiles.png")
    fig.savefig(paths[-1], dpi=150)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ks = sorted(plan.silhouette)
    ax.plot(ks, [plan.silhouette[q] for q in ks], marker="o", ms=3)
    ax.axvline(plan.k, color="C3", ls="--", label=f"k={plan.k}")
    ax.set_xlabel("k")
    ax.set_ylabel("mean silhouette")
    ax.set_title(f"{plan.name} on {plan.service.get('description', '')}: silhouette by k", fontsize=8)
    ax.legend()
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.16, top=0.9)  # tight_layout cost 0.1 s a figure
    paths.append(folder / "silhouette.png")
    fig.savefig(paths[-1], dpi=150)
    plt.close(fig)

    title = f"{plan.name} on {plan.service.get('description', '')}"
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.step(hours, plan.baseload_kw, where="post", color="0.4", label="baseload (worst-cluster median)")
    for label, ceil in plan.ev_ceiling_kw.get("by_day_type", {}).items():
        ls = "-" if label == "weekday" else "--"
        ax.step(hours, ceil, where="post", color="C2", ls=ls, lw=1.5, label=f"static EV ceiling, {label}")
    ax.step(hours, plan.schedule_kw, where="post", color="C1", lw=2, label="cost-optimal EV schedule")
    ax.axhline(plan.nec["alm_site_limit_kw"], color="k", lw=0.8, ls=":", label="managed site limit (cf x rating)")
    ax.axhline(plan.nec["existing_load_kw"], color="C3", lw=1, ls="-.", label="125% of max demand (220.87)")
    ax.axhline(plan.nec["rating_kw"], color="k", lw=1.2, label="service rating")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("local hour")
    ax.set_ylabel("kW")
    ax.set_title(f"{title}: capacity and EV limits", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.subplots_adjust(left=0.1, right=0.68, bottom=0.14, top=0.9)
    paths.append(folder / "capacity.png")
    fig.savefig(paths[-1], dpi=150)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(hours, plan.active_chargers)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("local hour")
    ax.set_ylabel("chargers drawing power")
    ax.set_title(
        f"{plan.name} on {plan.service.get('description', '')}\nchargers drawing power per hour "
        f"(peak {max(plan.active_chargers, default=0)} of {plan.chargers_with_lm_text()} with LM)",
        fontsize=8,
    )
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.16, top=0.88)
    paths.append(folder / "chargers.png")
    fig.savefig(paths[-1], dpi=150)
    plt.close(fig)

    curve = plan.sizing.get("curve") if plan.sizing else None
    if curve:
        fig, ax = plt.subplots(figsize=(5, 3))
        ns = [r["chargers"] for r in curve]
        ax.plot(ns, [100 * r["service_level"] for r in curve], marker="o", ms=3)
        limit = " (search limit)" if plan.chargers_with_lm_is_lower_bound else ""
        label = f"{plan.chargers_with_lm_text()} chargers{limit}"
        ax.axvline(plan.sizing["chargers"], color="C3", ls="--", label=label)
        ax.set_ylim(0, 101)
        ax.set_xlabel("chargers")
        ax.set_ylabel("% sessions served")
        ax.set_title(f"{title}: sizing simulation", fontsize=8)
        ax.legend(fontsize=7)
        fig.subplots_adjust(left=0.14, right=0.97, bottom=0.16, top=0.88)
        paths.append(folder / "sizing.png")
        fig.savefig(paths[-1], dpi=150)
        plt.close(fig)
    return paths
