"""Regulation aggregator benchmark (issue 5): fleet throughput, A estimation, control time per step.

    .venv/bin/python benchmarks/ssm_bench.py [--quick]

Prints, for 10,000 / 100,000 / 1,000,000 EVs: fleet construction time, the time of one 4 s fleet step and
the throughput in EV-steps per second (against the seed study's pandas implementation, about 22,000
EV-steps/s on this machine); the time to estimate A in test mode; and the time of one signal step (control
law + choosing the cars = the dispatch decision) for 10,000 EVs inside a closed-loop run on real RegD data.
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

SEED_EV_STEPS_PER_S = 22_000
SIGNAL = REPO.parent / "shared" / "data" / "regulation" / "pjm_regd_2s_2020-07-16_17.csv"


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_fleet(sizes: list[int], steps: int) -> None:
    print("fleet (seed-study distributions), 4 s steps, every EV charging by default")
    print(f"{'EVs':>10} {'build s':>9} {'step ms':>9} {'EV-steps/s':>14} {'x seed':>8}")
    for n in sizes:
        build = _median_time(lambda n=n: seed_fleet(n, 0), 3 if n < 1_000_000 else 2)
        f = seed_fleet(n, 0)
        f.arrival_s[:] = 0.0  # everyone online: the worst case for the step
        f.departure_s[:] = 1e9
        stepper = FleetStepper(f)
        stepper.step(0.0, 4.0)  # warm-up
        k = iter(range(1, 10**9))
        step = _median_time(lambda s=stepper, k=k: s.step(4.0 * next(k), 4.0), steps)
        rate = n / step
        print(f"{n:>10,} {build:>9.3f} {step * 1e3:>9.2f} {rate:>14,.0f} {rate / SEED_EV_STEPS_PER_S:>8,.0f}")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = ap.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    bench_fleet(sizes, steps=5 if args.quick else 20)
    bench_estimation()
    bench_control(0.25 if args.quick else 1.0)


if __name__ == "__main__":
    main()
