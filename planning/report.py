"""Plan outputs: the JSON report, the CSV building table, PNG plots and the OCPP 1.6 charging profile.

The OCPP profile is the hand-off to load management: a ``ChargePointMaxProfile`` (or ``TxDefaultProfile``),
kind ``Recurring``, recurrency ``Daily``, 24 one-hour periods whose limits (W) are the planned site EV
limit. ``startSchedule`` is a local midnight of the site expressed in UTC; a daily recurrence then repeats
every 24 h of UTC, so across a DST change the schedule shifts by one local hour until it is re-planned
(the controller's scheduler re-plans; see DESIGN.md).
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
    "chargers_without_lm",
    "chargers_with_lm",
    "cost_per_day_usd",
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
) -> dict:
    """The plan's hourly EV limit as an OCPP 1.6 ``ChargingProfile`` (JSON-able, camelCase keys)."""
    if purpose not in ("ChargePointMaxProfile", "TxDefaultProfile"):
        raise ValueError(f"purpose must be ChargePointMaxProfile or TxDefaultProfile (got {purpose!r})")
    day = pd.Timestamp(start_date) if start_date else pd.Timestamp(plan.profile_days[-1]) + pd.Timedelta(days=1)
    midnight = day.normalize()
    if plan.site_timezone:
        midnight = midnight.tz_localize(plan.site_timezone).tz_convert("UTC")
    else:
        midnight = midnight.tz_localize("UTC")
    # Whole watts, rounded down: never above the plan, and exactly a multiple of 0.1 as the schema's
    # ``multipleOf: 0.1`` demands (a float such as 78890.9 fails that check in binary floating point).
    periods = [
        {"startPeriod": 3600 * t, "limit": max(0, math.floor(float(kw) * 1000.0 + 1e-6))}
        for t, kw in enumerate(plan.schedule_kw)
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
        "chargers_without_lm": r.nec["chargers_without_lm"],
        "chargers_with_lm": r.chargers_with_lm,
        "cost_per_day_usd": round(r.cost_per_day, 2),
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
    profiles = {}
    for p in plans:
        prof = ocpp_profile(p, purpose=purpose)
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
    fig.suptitle(f"{plan.name}: daily profiles by cluster (k={plan.k})")
    fig.subplots_adjust(left=max(0.03, 0.9 / (3.2 * k)), right=0.99, bottom=0.16, top=0.8, wspace=0.08)
    paths.append(folder / "profiles.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ks = sorted(plan.silhouette)
    ax.plot(ks, [plan.silhouette[q] for q in ks], marker="o", ms=3)
    ax.axvline(plan.k, color="C3", ls="--", label=f"k={plan.k}")
    ax.set_xlabel("k")
    ax.set_ylabel("mean silhouette")
    ax.legend()
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.16, top=0.9)  # tight_layout cost 0.1 s a figure
    paths.append(folder / "silhouette.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.step(hours, plan.baseload_kw, where="post", label="baseload")
    ax.step(hours, np.clip(plan.headroom_kw, 0, None), where="post", label="ALM headroom")
    ax.step(hours, plan.schedule_kw, where="post", label="EV limit (plan)")
    if "capacity_upper_kw" in plan.schedule_extra:
        ax.step(hours, plan.schedule_extra["capacity_upper_kw"], where="post", ls=":", label="seed upper")
        ax.step(hours, plan.schedule_extra["capacity_lower_kw"], where="post", ls=":", label="seed lower")
    ax.axhline(plan.nec["alm_site_limit_kw"], color="k", lw=0.8, ls="--", label="0.8 x service")
    ax.set_xlabel("hour")
    ax.set_ylabel("kW")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.16, top=0.9)  # tight_layout cost 0.1 s a figure
    paths.append(folder / "capacity.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(hours, plan.active_chargers)
    ax.set_xlabel("hour")
    ax.set_ylabel("active chargers")
    ax.set_title(f"{plan.chargers_with_lm} chargers, ${plan.cost_per_day:.2f}/day", fontsize=9)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.16, top=0.9)  # tight_layout cost 0.1 s a figure
    paths.append(folder / "chargers.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    return paths
