"""How much symmetric regulation capacity the seed study's fleet could hold in each hour, at best.

    .venv/bin/python benchmarks/evening_bound.py [--evs 10000] [--seed 0] [--slack-margin-s 2700]

Why: ``evsite regulate`` offers nothing from 22:00 to 00:59. Is that the cars or the strategy? This script
charges every car at full power from its arrival until its demanded SoC, then leaves it idle: no strategy
finishes the energy earlier, so none leaves more slack for the later hours (and stopping at the demand keeps
the ceiling at rated power). With the true departures and the same rules as ``run_market``'s deliverable
(a car must draw ceil x (1 - slack / time to the hour's end) not to be forced, forced cars their ceiling,
cars that need nothing nothing, cars behind bidirectional chargers that can afford the hour and the recharge
may discharge; slack from the estimated departure less the margin), it prints per hour the highest floor,
the lowest ceiling and the symmetric capacity a base fixed for the hour could hold around them,
C = (min ceiling - max floor) / 2 (0 when negative). An upper bound for an energy-first controller, not an
offer: it ignores ramps, latencies and the meter's view. Same fleet, departures and bidirectional share
(50 %) as ``evsite regulate --evs N --seed S --hours 48``; 20 s steps.
"""

from __future__ import annotations

import argparse

import numpy as np

from controller.aggregator.market import Conditions, departures
from evsite.ev_fleet import SOC_MAX, SOC_MIN, charge_ceiling_kw, multi_day_fleet

HOUR_S = 3600.0


def bound_per_hour(evs: int, seed: int, slack_margin_s: float, *, soc_cv: float = 0.8, soc_force: float = 0.15,
                   dt_s: float = 20.0, hours: int = 30) -> list[tuple[int, float, float]]:  # fmt: skip
    """[(hour, max floor kW, min ceiling kW)] over ``hours`` from midnight with charging at full power to demand."""
    f = multi_day_fleet(evs, 2, seed)
    est, truth = departures(f, Conditions(), np.random.default_rng(seed))
    can = np.random.default_rng(seed + 1).random(len(f)) < 0.5
    soc = f.soc.copy()
    recharge_s = HOUR_S * f.p_discharge_kw / f.p_charge_kw / f.efficiency**2
    lo = np.full(hours, -np.inf)
    hi = np.full(hours, np.inf)
    for k in range(round(hours * HOUR_S / dt_s)):
        t = k * dt_s
        h = int(t // HOUR_S)
        on = (f.arrival_s <= t) & (truth > t)
        ceil = charge_ceiling_kw(f, soc_cv, soc)
        ceil[soc >= SOC_MAX - 1e-6] = 0.0
        need = np.maximum(f.soc_target - soc, 0.0) * f.capacity_kwh / f.efficiency
        lax = est - slack_margin_s - t - need / f.p_charge_kw * HOUR_S
        forced = on & (need > 0) & ((lax <= 0) | (soc < soc_force))
        left = max((h + 1) * HOUR_S - t, dt_s)
        must = ceil * np.clip(1.0 - lax / left, 0.0, 1.0)
        must[need <= 0] = 0.0
        must[forced] = ceil[forced]
        dis = on & can & ~forced & (soc > max(soc_force, SOC_MIN) + 0.05) & (lax > left + recharge_s)
        lo[h] = max(lo[h], float(must[on].sum() - f.p_discharge_kw[dis].sum()))
        hi[h] = min(hi[h], float(ceil[on].sum()))
        p = np.where(on & (need > 0), ceil, 0.0)
        soc = np.minimum(soc + p * f.efficiency * dt_s / HOUR_S / f.capacity_kwh, SOC_MAX)
    return [(h, float(lo[h]), float(hi[h])) for h in range(hours)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--evs", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slack-margin-s", type=float, default=2700.0)
    a = p.parse_args()
    print(f"{a.evs:,} EVs a day, seed {a.seed}, slack margin {a.slack_margin_s:.0f} s; every car at full power from "
          "arrival to its demand, then idle")  # fmt: skip
    print("hour  max floor MW  min ceiling MW  symmetric capacity bound MW")
    for h, lo, hi in bound_per_hour(a.evs, a.seed, a.slack_margin_s):
        print(f"{h % 24:02d}:00 {lo / 1000:13.3f} {hi / 1000:15.3f} {max(hi - lo, 0.0) / 2000:28.3f}")


if __name__ == "__main__":
    main()
