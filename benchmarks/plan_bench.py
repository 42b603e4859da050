"""Benchmark `evsite plan` on the 25 Cambridge buildings (2 years each, hourly, real meters).

Prints, per building-year: the whole pipeline and each stage (ingest = read share + clean + daily profiles +
max demand, silhouette search over k = 2..30, final k-means, GEKKO optimisation); GEKKO's fixed start-up cost;
whether every charger count came out integral from the solver; the batch wall time for all 25 buildings on
``--workers`` processes (plots off, then on); and, with ``--seed-reference``, the seed study's clustering
stage timed the seed's way on this machine (k-means on unscaled data + sklearn silhouette_score for every k).

Service ratings are not in the data: each building gets the next 100 A (400 V three-phase) above 1.6 x its
hourly peak, so every building has some headroom to plan. Run: .venv/bin/python benchmarks/plan_bench.py
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "buildings" / "cambridge"
METER = SHARED / "cambridge_electricity_hourly_kwh_2018_2019.csv"

if TYPE_CHECKING:
    from evsite.config import Config


def _config(meters: list) -> Config:
    from evsite.config import parse_config

    ratings = {m.name: float(math.ceil(1.6 * m.kw.max() * 1000 / (400 * 3**0.5) / 100) * 100) for m in meters}
    return parse_config(
        {
            "service": {"voltage_v": 400, "phases": 3, "rating_a": 400},
            "planning": {"site_timezone": "Europe/London", "rating_a_by_meter": ratings},
        }
    )


def gekko_overhead(repeats: int = 5) -> float:
    from gekko import GEKKO

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        m = GEKKO(remote=False)
        x = m.Var(0, lb=0, ub=10, integer=True)
        m.Equation(x >= 1.5)
        m.Minimize(x)
        m.options.SOLVER = 1
        m.solve(disp=False)
        m.cleanup()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def seed_reference(meters: list) -> float:
    """The seed's clustering stage as published: KMeans fit on unscaled profiles, silhouette_score on scaled."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import MinMaxScaler

    from planning.cleaning import clean_series
    from planning.loadstudy import daily_profiles

    total, years = 0.0, 0.0
    for m in meters:
        s, _ = clean_series(m.kw, site_tz=m.site_tz)
        prof, _ = daily_profiles(s)
        x = prof.to_numpy()
        t = time.perf_counter()
        xs = MinMaxScaler().fit_transform(x)
        for k in range(2, 31):
            labels = KMeans(n_clusters=k, random_state=0).fit(x).labels_
            if np.unique(labels).size > 1:
                silhouette_score(xs, labels)
        total += time.perf_counter() - t
        years += len(prof) / 365.0
    return total / years


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed-reference", action="store_true", help="also time the seed's clustering stage")
    args = ap.parse_args()

    from planning.meter import read_meter
    from planning.pipeline import BuildingPlan, plan_building, plan_many

    t = time.perf_counter()
    meters = read_meter(METER, site_tz="Europe/London")
    read_s = time.perf_counter() - t
    cfg = _config(meters)
    print(f"buildings: {len(meters)}  (one shared CSV read in {read_s:.3f} s)")

    # Warm imports (sklearn, gekko) so the per-building figures are steady-state.
    plan_building(meters[0], cfg)

    stages = {"ingest_s": 0.0, "silhouette_search_s": 0.0, "kmeans_s": 0.0, "optimisation_s": 0.0, "total_s": 0.0}
    years = 0.0
    integral = True
    chargers = []
    for m in meters:
        p = plan_building(m, cfg)
        for k in stages:
            stages[k] += p.timings[k]
        years += p.days / 365.0
        n_raw = p.schedule_extra.get("n_from_solver", p.chargers_with_lm)
        integral &= abs(n_raw - round(n_raw)) < 1e-6
        chargers.append(p.chargers_with_lm)
    stages["ingest_s"] += read_s
    stages["total_s"] += read_s
    print(f"building-years: {years:.1f}")
    print("seconds per building-year (sequential, 1 process):")
    for k, v in stages.items():
        print(f"  {k.removesuffix('_s'):20s} {v / years:.4f}")
    print(f"GEKKO fixed cost per solve (trivial model): {gekko_overhead():.3f} s")
    print(f"charger counts integral as solved: {integral}; counts: {chargers}")

    for plots in (False, True):
        import tempfile

        from planning.report import write_plots

        with tempfile.TemporaryDirectory() as tmp:
            from functools import partial

            post = partial(write_plots, out_dir=Path(tmp)) if plots else None
            t = time.perf_counter()
            res = plan_many(meters, cfg, workers=args.workers, progress=False, post=post)
            wall = time.perf_counter() - t
        ok = sum(isinstance(r, BuildingPlan) for r in res)
        label = "with plots" if plots else "no plots"
        print(f"batch, 25 buildings, {args.workers} workers, {label}: {wall:.2f} s ({ok}/{len(res)} planned)")

    if args.seed_reference:
        print(
            f"seed-style clustering stage (unscaled fit + silhouette_score, k=2..30): "
            f"{seed_reference(meters):.3f} s per building-year"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
