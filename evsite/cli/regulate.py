"""`evsite regulate`: run an EV fleet against a frequency-regulation signal and score it as PJM would.

    evsite regulate --evs 10000 --signal ../shared/data/regulation/pjm_regd_2s_2020-07-16_17.csv --hours 1

Builds the Monte Carlo fleet (seed study distributions by default), estimates the state-space model's A in
test mode (or loads one with ``--model``), then closes the loop every ``[regulation] step_s``: the aggregator
switches cars to follow ``base + signal x capacity``, the fleet simulator says what they really drew.
Prints the capacity offered, the PJM score components and ``composite score: 0.NN``, the model's
prediction error (closed loop, and open loop with and without the SoC-boundary handling), and the energy
impact on drivers (SoC at departure against the demanded SoC).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from evsite.cli.common import (
    add_config_arg,
    input_file_problem,
    load_config_or_exit,
    non_negative_float,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from evsite.config import RegulationConfig
    from evsite.ev_fleet import Fleet
    from planning.ssm import StateSpaceModel

EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "regulate",
        help="run an EV fleet against a regulation signal (state-space model), print the PJM score",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--evs", type=positive_int, default=10_000, help="fleet size (default: %(default)s)")
    p.add_argument(
        "--signal", metavar="FILE", help="CSV of timestamp,per-unit value (default: [regulation] signal_file)"
    )
    p.add_argument("--hours", type=positive_float, default=1.0, help="simulated hours (default: %(default)s)")
    p.add_argument(
        "--start",
        default="20:00",
        metavar="HH:MM",
        help="time of day to start, in the fleet and the signal's first day (default: %(default)s)",
    )
    p.add_argument(
        "--fleet",
        choices=("seed", "behaviour"),
        default="seed",
        help="seed: the study's distributions; behaviour: ElaadNL workplace (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: [simulation] seed)")
    p.add_argument(
        "--v2g-share",
        type=_share,
        default=1.0,
        help="share of EVs behind bidirectional chargers (default: %(default)s)",
    )
    p.add_argument("--latency-s", type=non_negative_float, default=4.0,
                   help="delay before a charger applies a command (OCPP round trip, default: %(default)s)")  # fmt: skip
    p.add_argument("--no-boundary", action="store_true", help="the plain model, without SoC-boundary handling")
    p.add_argument("--model", metavar="FILE", help="load A from an .npz written by --save-model")
    p.add_argument("--save-model", metavar="FILE", help="save the estimated (and online-updated) A")
    add_config_arg(p)
    p.set_defaults(func=run)


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v}")
    return v


def _time_of_day_s(text: str) -> float:
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"--start: expected HH:MM, got {text!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"--start: not a time of day: {text!r}")
    return h * 3600.0 + m * 60.0


def _fail(message: str) -> int:
    print(f"evsite regulate: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from controller.aggregator.simulate import open_loop_errors, run_regulation
    from evsite.ev_fleet import FleetDataError, behaviour_fleet, charge_until, seed_fleet
    from planning.ssm import StateSpaceModel
    from planning.ssm_estimate import estimate_model
    from simulators.regulation_signal import SignalFileError, load_signal

    cfg = load_config_or_exit(args.config)
    rc = cfg.regulation
    seed = cfg.simulation.seed if args.seed is None else args.seed
    signal_path = args.signal or (str(rc.signal_file) if rc.signal_file else None)
    if signal_path is None:
        return _fail("no signal: give --signal FILE (or set [regulation] signal_file)")
    problem = input_file_problem(signal_path, "signal")
    if problem is not None:
        return _fail(problem)
    try:
        t0 = _time_of_day_s(args.start)
        signal = load_signal(signal_path)
    except (ValueError, SignalFileError) as err:
        return _fail(str(err))
    dt = rc.step_s
    n_steps = round(args.hours * 3600.0 / dt)
    midnight = signal.start.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (midnight - signal.start).total_seconds() + t0
    if offset < 0:
        offset += 86_400.0  # the file starts after that time of day: take it on the next day
    try:
        sig = signal.on_steps(offset, dt, n_steps)
    except SignalFileError as err:
        return _fail(f"{signal_path}: {err}")

    t_wall = time.perf_counter()
    try:
        fleet = seed_fleet(args.evs, seed) if args.fleet == "seed" else behaviour_fleet(args.evs, seed)
    except FleetDataError as err:
        return _fail(str(err))
    build_s = time.perf_counter() - t_wall
    rng = np.random.default_rng(seed + 1)
    can_discharge = rng.random(args.evs) < args.v2g_share
    boundary = not args.no_boundary

    t_a = time.perf_counter()
    if args.model:
        try:
            model = StateSpaceModel.load(args.model)
        except ValueError as err:
            return _fail(str(err))
        if model.ns != rc.soc_bins:
            return _fail(f"{args.model}: model has {model.ns} SoC bins, [regulation] soc_bins is {rc.soc_bins}")
        model.learning_rate = rc.learning_rate
        how = f"loaded from {args.model}"
    else:
        sample = fleet.take(np.arange(min(args.evs, 2000)))
        model = estimate_model(sample, ns=rc.soc_bins, learning_rate=rc.learning_rate, duration_s=900.0,
                               dt_s=dt, boundary=boundary, seed=seed)  # fmt: skip
        how = f"estimated in test mode on {len(sample):,} EVs x 15 min"
    est_s = time.perf_counter() - t_a

    charge_until(fleet, t0)
    ol = {b: open_loop_errors(fleet, model if b == boundary else _plain_or_boundary(fleet, rc, dt, b, seed),
                              t0_s=t0, duration_s=min(n_steps * dt, 1800.0), dt_s=dt, boundary=b,
                              ahead_s=rc.capacity_horizon_s)
          for b in (True, False)}  # fmt: skip
    t_r = time.perf_counter()
    result = run_regulation(fleet, sig, model, t0_s=t0, dt_s=dt, boundary=boundary, can_discharge=can_discharge,
                            capacity_horizon_s=rc.capacity_horizon_s, a_update_period_s=rc.a_update_period_s,
                            latency_s=args.latency_s, timer=time.perf_counter)  # fmt: skip
    run_s = time.perf_counter() - t_r
    if args.save_model:
        try:
            model.save(args.save_model)
        except OSError as err:
            return _fail(f"{args.save_model}: cannot write the model: {err.strerror}")

    s, d, pe = result.score, result.drivers, result.prediction_error()
    cap_mw = result.capacity_kw / 1000.0
    kind = "seed-study" if args.fleet == "seed" else "ElaadNL workplace"
    print(f"fleet: {args.evs:,} EVs ({kind} distributions, seed {seed}) built in {build_s:.2f} s; "
          f"{int(result.online[0]):,} online at {args.start}; {args.v2g_share:.0%} bidirectional")  # fmt: skip
    print(f"signal: {Path(signal_path).name} from {midnight.date()} {args.start}, {args.hours:g} h at {dt:g} s steps; "
          f"command latency {args.latency_s:g} s")  # fmt: skip
    print(f"model: {3 * model.ns} states, A {how} in {est_s:.2f} s; "
          f"boundary handling {'on' if boundary else 'off'}")  # fmt: skip
    base_mw = result.base_kw.mean() / 1000
    print(f"capacity offered: mean {cap_mw.mean():.2f} MW (min {cap_mw.min():.2f}, max {cap_mw.max():.2f}), "
          f"re-declared every {rc.capacity_horizon_s:g} s; base point mean {base_mw:.2f} MW")  # fmt: skip
    t_last, up_last, down_last = result.declared[-1]
    print(
        f"next-interval capacity (model forecast at +{(t_last - t0) / 60:.0f} min, "
        f"{rc.capacity_horizon_s:g} s ahead): up {up_last / 1000:.2f} MW, down {down_last / 1000:.2f} MW"
    )
    print(f"PJM performance: accuracy {s.accuracy:.3f}  delay {s.delay:.3f} ({s.delay_s:.0f} s)  "
          f"precision {s.precision:.3f}")  # fmt: skip
    print(f"composite score: {s.composite:.2f} ({'pass' if s.passed else 'FAIL'}, pass mark 0.75)")
    print(f"SSM prediction, closed loop: next-step MAE {pe['mae_kw']:.0f} kW "
          f"({pe['mae_per_capacity']:.1%} of capacity)")  # fmt: skip
    for b in (True, False):
        e = ol[b]
        print(f"SSM prediction, open loop (all charging), boundary handling {'on ' if b else 'off'}: "
              f"next-step {e['next_step_rel']:.1%}, {rc.capacity_horizon_s / 60:g}-min-ahead {e['ahead_rel']:.1%} "
              f"of mean |P| {e['mean_abs_power_kw'] / 1000:.2f} MW")  # fmt: skip
    if d.departed:
        print(f"drivers: {d.departed:,} departed; SoC at departure {d.mean_soc_departure:.3f} mean vs demanded "
              f"{d.mean_soc_demanded:.3f}; {d.met_share:.1%} met their demand ({d.met_share_feasible:.1%} of the "
              f"{d.feasible:,} whose demand was reachable); mean shortfall {d.mean_shortfall_kwh:.2f} kWh")  # fmt: skip
    else:
        print("drivers: none departed during the run")
    print(f"switching: {result.switches.mean():.1f} EVs per step; decision {result.decide_s.mean() * 1e3:.2f} ms "
          f"mean, {result.decide_s.max() * 1e3:.2f} ms max; closed loop {run_s:.1f} s")  # fmt: skip
    return 0


def _plain_or_boundary(fleet: Fleet, rc: RegulationConfig, dt: float, boundary: bool, seed: int) -> StateSpaceModel:
    """A second model (the other boundary variant) for the open-loop comparison."""
    import numpy as np

    from planning.ssm_estimate import estimate_model

    sample = fleet.take(np.arange(min(len(fleet), 2000)))
    return estimate_model(sample, ns=rc.soc_bins, duration_s=900.0, dt_s=dt, boundary=boundary, seed=seed)
