"""`evsite replay` on Caltech's August 2021 sessions at 20/30/40/60 % of the uncontrolled peak, plus the
per-call time of the allocation policies at 50 and 200 connectors.

    .venv/bin/python benchmarks/replay_bench.py            # full (a few minutes: the MPC solves an LP per period)
    .venv/bin/python benchmarks/replay_bench.py --quick    # 30 % only, and fewer timing calls

The rows come from the command's own code (``evsite.cli.replay.load`` and ``rows_for`` on its parsed
arguments), so they are the figures ``evsite replay`` prints. Reference (ACN-Sim, same sessions, 30 %):
LLF 96.95 % of the energy with 403 served, EDF 95.5 % with 418 of 437 served, offline optimum 96.95 % or 430.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from evsite.cli import build_parser
from evsite.cli.replay import load, rows_for
from planning.allocation import Constraints, Sessions, Snapshot, allocate
from planning.allocation.replay import uncontrolled_peak_kw

DATA = Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "ev-sessions" / "acn_caltech_sessions.csv"
AUGUST = ["--from", "2021-08-01", "--to", "2021-08-31"]


ALL = (
    "equal",
    "priority",
    "edf",
    "llf",
    "mpc",
    "uncontrolled",
    "offline-optimum-energy",
    "offline-optimum-sessions",
)


def replay_table(fractions: list[float], extra: list[str], policies: tuple[str, ...] = ALL) -> None:
    print("| cap | policy | energy delivered | sessions served | violations | seconds |")
    print("|---|---|---|---|---|---|")
    for fraction in fractions:
        argv = ["replay", "--sessions", str(DATA), "--cap-fraction", str(fraction), *AUGUST, *extra]
        args = build_parser().parse_args(argv)
        rs = load(args)
        cap = fraction * uncontrolled_peak_kw(rs)
        for policy in policies:
            t0 = time.perf_counter()
            (row,) = [r for r in rows_for(rs, cap, policy, args) if r.policy == policy]
            took = time.perf_counter() - t0
            note = f" ({row.note})" if row.note else ""
            print(
                f"| {fraction:.0%} ({cap:.2f} kW) | {policy} | {row.energy_share:.2%} | "
                f"{row.sessions_served}/{row.sessions} | {row.violations} | {took:.1f}{note} |",
                flush=True,
            )


def live_site(n: int, rng: np.random.Generator) -> Snapshot:
    """``n`` single-phase 32 A connectors on a 3-phase service and 4 panels, 80 % plugged in, mixed knowledge."""
    phase = np.arange(n) % 3
    panel = np.arange(n) % 4
    A = np.vstack([(phase == k).astype(float) for k in range(3)] + [(panel == k).astype(float) for k in range(4)])
    b = np.concatenate([np.full(3, 32.0 * n / 3 * 0.4), np.full(4, 32.0 * n / 4 * 0.5)])
    names = tuple(f"service L{k + 1}" for k in range(3)) + tuple(f"panel P{k + 1}" for k in range(4))
    c = Constraints(A, b, names, tuple(f"CP{i:04d}/1" for i in range(n)))
    s = Sessions.empty(n, kw_per_a=0.23)
    s.active[:] = rng.random(n) < 0.8
    s.energy_requested_kwh[:] = np.where(rng.random(n) < 0.7, rng.uniform(5, 40, n), np.nan)
    s.energy_delivered_kwh[:] = rng.uniform(0, 5, n)
    s.departure_s[:] = np.where(rng.random(n) < 0.9, rng.uniform(1800, 10 * 3600, n), np.nan)
    s.arrival_s[:] = -rng.uniform(0, 3600, n)
    return Snapshot(c, s, uncontrolled=rng.uniform(0, 20, 7), period_s=300)


def call_times(calls: int) -> None:
    print("| connectors | policy | median ms per call | max ms |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(1)
    for n in (50, 200):
        snaps = [live_site(n, rng) for _ in range(calls)]
        for policy in ("equal", "llf", "mpc"):
            times = []
            for snap in snaps:
                t0 = time.perf_counter()
                alloc = allocate(snap, policy)
                times.append((time.perf_counter() - t0) * 1000)
                room = snap.constraints.b - snap.uncontrolled
                assert (snap.constraints.A @ alloc.limit_a <= np.maximum(room, 0) + 1e-6).all()
            print(f"| {n} | {policy} | {np.median(times):.1f} | {max(times):.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"machine load (uptime): {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    call_times(5 if args.quick else 30)
    print()
    fractions = [0.3] if args.quick else [0.2, 0.3, 0.4, 0.6]
    print("Perfect departure information (ACN-Sim's convention):")
    replay_table(fractions, [])
    print()
    print("Departure estimated per id tag (--estimated-departure), 30 %:")
    replay_table([0.3], ["--estimated-departure"])
    print()
    print("With the J1772 6 A minimum (--min-a 6, as live load management; ACN-Sim has none), 30 %:")
    replay_table([0.3], ["--min-a", "6"], ("edf", "llf", "mpc"))


if __name__ == "__main__":
    main()
