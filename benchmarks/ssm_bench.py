"""Regulation aggregator benchmark: the seed's step against ours (like with like), A estimation, closed loops.

    .venv/bin/python benchmarks/ssm_bench.py [--quick]

1. Like with like: one full aggregator step -- state vector, control law (Wang et al.), choice of the cars,
   SoC update and the fleet's power report -- done the seed study's way (one pandas row per EV, updated
   row by row: ``seed_step`` below, written from the study's description in MODELS.md) and ours
   (``RegulationController.decide`` + ``FleetStepper.step``), on the same fleet, the same targets, in the
   same run; EV-steps per second of each and the ratio. (The old figure divided by a fixed 22,000.)
2. The physics step alone for 10,000 / 100,000 / 1,000,000 EVs (every car online, the worst case).
3. A estimation in test mode.
4. Closed loops, separately: the old 5-minute mode-switching loop (``run_regulation``) and the hourly-market
   loop (``run_market``: decision, latencies, meter values, physics) for 10,000 EVs a day on real RegD.
Times are wall-clock medians of repeated runs (``time.perf_counter``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from controller.aggregator.core import RegulationController
from controller.aggregator.simulate import run_regulation
from evsite.ev_fleet import FleetStepper, charge_until, seed_fleet
from planning.ssm_estimate import collect_transitions, estimate_model
from simulators.regulation_signal import load_signal

REPO = Path(__file__).resolve().parents[1]

SIGNAL = REPO.parent / "shared" / "data" / "regulation" / "pjm_regd_2s_2020-07-16_17.csv"


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def seed_step(df, target_kw: float, t_s: float, dt_s: float, ns: int = 20) -> float:
    """One aggregator step the seed's way: a DataFrame row per EV (columns soc, mode, p, eff, q, arr, dep),
    state vector by counting rows, the paper's control loop over SoC bins, cars moved row by row, SoC
    updated row by row, the power summed over rows. Returns the fleet's injection (kW)."""
    x = np.zeros(3 * ns)
    online = []
    for i, row in df.iterrows():
        if row["arr"] <= t_s <= row["dep"]:
            online.append(i)
            b = min(int(row["soc"] * ns), ns - 1)
            x[int(row["mode"]) * ns + b] += 1
    ne = len(online)
    if ne == 0:
        return 0.0
    x /= ne
    pave = float(df.loc[online, "p"].mean())
    cs = x[:ns]
    p_now = -ne * pave * cs.sum()
    delta = target_kw - p_now
    u = np.zeros(ns)
    if delta > 0:  # regulation up: CS -> IS from the highest SoC bin
        r_u = min(delta, ne * pave * cs.sum()) / (pave * ne)
        for j in range(ns - 1, -1, -1):
            u[j] = min(max(r_u - cs[j + 1 :].sum(), 0.0), cs[j])
    else:  # regulation down: IS -> CS from the lowest SoC bin
        r_d = min(-delta, ne * pave * x[ns : 2 * ns].sum()) / (pave * ne)
        for j in range(ns):
            u[j] = -min(max(r_d - x[ns : ns + j].sum(), 0.0), x[ns + j])
    moved = np.zeros(ns, dtype=int)
    want = np.round(np.abs(u) * ne).astype(int)
    frm, to = (0, 1) if delta > 0 else (1, 0)
    for i in online:
        b = min(int(df.at[i, "soc"] * ns), ns - 1)
        if df.at[i, "mode"] == frm and moved[b] < want[b]:
            df.at[i, "mode"] = to
            moved[b] += 1
    total = 0.0
    for i in online:
        p = df.at[i, "p"] if df.at[i, "mode"] == 0 else 0.0
        soc = df.at[i, "soc"] + dt_s / 3600.0 * p * df.at[i, "eff"] / df.at[i, "q"]
        if soc >= 0.995:
            soc, df.at[i, "mode"] = 0.995, 1
        df.at[i, "soc"] = soc
        total -= p
    return total


def bench_like_with_like(n: int, steps: int) -> None:
    import pandas as pd

    print(f"like with like: one aggregator step (state vector, control, car choice, SoC, power) for {n:,} EVs")
    f = seed_fleet(n, 0)
    t0 = 20 * 3600.0
    charge_until(f, t0)
    model = estimate_model(f.take(np.arange(min(n, 2_000))), duration_s=900.0, seed=0)
    sig = load_signal(SIGNAL).on_steps(t0, 4.0, steps)
    online = f.online(t0)
    base = -float(f.p_charge_kw[online].sum()) / 2.0
    targets = base + sig * abs(base) * 0.5
    df = pd.DataFrame({"soc": f.soc, "mode": f.mode.astype(int), "p": f.p_charge_kw, "eff": f.efficiency,
                       "q": f.capacity_kwh, "arr": f.arrival_s, "dep": f.departure_s})  # fmt: skip
    t = time.perf_counter()
    for k in range(steps):
        seed_step(df, float(targets[k]), t0 + 4.0 * k, 4.0)
    seed_s = (time.perf_counter() - t) / steps
    g = f.take(slice(None))
    ctrl = RegulationController(g, model, boundary=False)
    stepper = FleetStepper(g)
    times, reports = [], []
    for k in range(steps):
        t = time.perf_counter()
        ctrl.decide(t0 + 4.0 * k, float(targets[k]))
        g.mode[:] = ctrl.commanded
        reports.append(-stepper.step(t0 + 4.0 * k, 4.0).total_kw)  # the power report, as the seed's
        times.append(time.perf_counter() - t)
    ours = statistics.median(times)
    print(f"  seed (pandas rows): {seed_s * 1e3:9.1f} ms/step {n / seed_s:>12,.0f} EV-steps/s")
    print(f"  evsite (numpy):     {ours * 1e3:9.2f} ms/step {n / ours:>12,.0f} EV-steps/s   x{seed_s / ours:,.0f}")


def bench_fleet(sizes: list[int], steps: int) -> None:
    print("\nphysics step alone (seed-study distributions), 4 s steps, every EV online and charging")
    print(f"{'EVs':>10} {'build s':>9} {'step ms':>9} {'EV-steps/s':>14}")
    for n in sizes:
        build = _median_time(lambda n=n: seed_fleet(n, 0), 3 if n < 1_000_000 else 2)
        f = seed_fleet(n, 0)
        f.arrival_s[:] = 0.0  # everyone online: the worst case for the step
        f.departure_s[:] = 1e9
        stepper = FleetStepper(f)
        stepper.step(0.0, 4.0)  # warm-up
        k = iter(range(1, 10**9))
        step = _median_time(lambda s=stepper, k=k: s.step(4.0 * next(k), 4.0), steps)
        print(f"{n:>10,} {build:>9.3f} {step * 1e3:>9.2f} {n / step:>14,.0f}")


def bench_estimation() -> None:
    print("\nA estimation (test mode, random modes every 100 s, 4 s steps, 20 SoC bins)")
    for n, dur in ((2_000, 900.0), (10_000, 900.0), (10_000, 3600.0)):
        f = seed_fleet(n, 0)
        t = _median_time(lambda f=f, dur=dur: collect_transitions(f, duration_s=dur, seed=1), 3)
        print(f"  {n:>7,} EVs x {dur / 60:>4.0f} min ({int(dur / 4):>4} steps): {t:7.3f} s")


def bench_control(hours: float) -> None:
    print("\nsignal step for 10,000 EVs (control law + choice of cars), closed loop on PJM RegD 20:00")
    f = seed_fleet(10_000, 0)
    model = estimate_model(f.take(np.arange(2_000)), duration_s=900.0, seed=0)
    t0 = 20 * 3600.0
    charge_until(f, t0)
    sig = load_signal(SIGNAL).on_steps(t0, 4.0, int(hours * 900))
    t = time.perf_counter()
    run = run_regulation(f, sig, model, t0_s=t0, latency_s=4.0, timer=time.perf_counter)
    wall = time.perf_counter() - t
    d = run.decide_s * 1e3
    print(f"  decision per step: mean {d.mean():.2f} ms, median {np.median(d):.2f} ms, "
          f"p99 {np.percentile(d, 99):.2f} ms, max {d.max():.2f} ms over {d.size} steps")  # fmt: skip
    print(f"  closed loop incl. fleet step and online A update: {wall:.2f} s for {hours:g} h "
          f"({wall / d.size * 1e3:.2f} ms per step); composite score {run.score.composite:.2f}")  # fmt: skip
    for n in (100_000, 1_000_000):
        big = seed_fleet(n, 0)
        charge_until(big, t0)
        ctrl = RegulationController(big, model)
        p_now, up, down = ctrl.capacity(t0, 300.0, 4.0)
        targets = p_now + (up - down) / 2 + sig[:6] * (up + down) / 2 * 0.9
        times = []
        for i, target in enumerate(targets):
            t = time.perf_counter()
            ctrl.decide(t0 + 4.0 * i, float(target))
            times.append(time.perf_counter() - t)
        print(f"  decision per step for {n:>9,} EVs: median {statistics.median(times) * 1e3:.1f} ms")


def bench_market(hours: float) -> None:
    from controller.aggregator.market import run_market
    from evsite.ev_fleet import multi_day_fleet

    print(f"\nhourly-market closed loop, 10,000 EVs a day, 2 s steps, {hours:g} h from midnight on PJM RegD")
    f = multi_day_fleet(10_000, 1, 0)
    model = estimate_model(f.take(np.arange(2_000)), duration_s=900.0, seed=0)
    sig = load_signal(SIGNAL).on_steps(0.0, 2.0, int(hours * 1800))
    can = np.random.default_rng(1).random(len(f)) < 0.5
    t = time.perf_counter()
    run = run_market(f, sig, model, t0_s=0.0, can_discharge=can, timer=time.perf_counter)
    wall = time.perf_counter() - t
    d = run.decide_s * 1e3
    print(f"  decision per step: mean {d.mean():.2f} ms, p99 {np.percentile(d, 99):.2f} ms, max {d.max():.2f} ms")
    print(f"  whole loop (decision, latencies, meter values, physics): {wall / d.size * 1e3:.2f} ms per step, "
          f"{wall:.1f} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = ap.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    bench_like_with_like(2_000, 3 if args.quick else 10)
    bench_fleet(sizes, steps=5 if args.quick else 20)
    bench_estimation()
    bench_control(0.25 if args.quick else 1.0)
    bench_market(0.5 if args.quick else 2.0)


if __name__ == "__main__":
    main()
