"""`evsite regulate`: run an EV fleet in PJM's hourly regulation market against a RegD signal, scored as PJM would.

    evsite regulate --evs 10000 --signal ../shared/data/regulation/pjm_regd_2s_2020-07-16_17.csv --hours 24

Builds the Monte Carlo fleet (seed study distributions, one fleet per day), estimates the state-space
model's A in test mode (or loads one with ``--model``), then runs from ``--start`` (midnight by default)
at the signal's 2 s: at each hour the aggregator fixes its base point and capacity for the hour (energy
the cars need first), then follows ``base + signal x capacity`` by modulating the cars' current and
switching as few cars as it can, through log-normal OCPP round trips with lost commands, delayed meter
values, ramps, CC/CV taper, minimum current and drivers who leave around (some well before) the estimated
departure (``[regulation]`` keys). Prints per hour the offer, what the fleet could have delivered and the
hour's score; the PJM components and ``composite score: 0.NN`` over the hours with capacity; the
hour-ahead capacity forecast error of the SSM against persistence and seasonal-naive (runs over 24 h);
mode switches per car-hour; and the drivers' outcome. ``--export FILE`` writes every 2 s sample as CSV
(``time,signal,response,capacity_kw,base_kw``) and one plot per hour (``FILE-HH.png``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evsite.cli.common import (
    add_config_arg,
    input_file_problem,
    load_config_or_exit,
    non_negative_float,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from datetime import datetime

    from controller.aggregator.market import MarketRun

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
        default="00:00",
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
        default=0.5,
        help="share of EVs behind bidirectional chargers (default: %(default)s)",
    )
    p.add_argument("--latency-s", type=non_negative_float, default=None,
                   help="median OCPP round trip (default: [regulation] latency_median_s)")  # fmt: skip
    p.add_argument("--slack-margin-s", type=non_negative_float, default=None,
                   help="plan cars to be done this long before their estimated departure "
                        "(default: [regulation] slack_margin_s)")  # fmt: skip
    p.add_argument("--signal-tz", default="America/New_York", metavar="ZONE",
                   help="zone of naive signal timestamps, for --export (PJM publishes Eastern time; "
                        "default: %(default)s)")  # fmt: skip
    p.add_argument("--export", metavar="FILE",
                   help="write the 2 s samples to FILE (CSV) and one plot per hour to FILE-HH.png")  # fmt: skip
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
    from controller.aggregator.market import Conditions, run_market
    from controller.aggregator.tracker import TrackerSettings
    from evsite.ev_fleet import FleetDataError, behaviour_fleet, multi_day_fleet
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
    dt = 2.0  # RegD's native period: the loop, the site meter and the score all run at it
    try:
        t0 = _time_of_day_s(args.start)
        signal = load_signal(signal_path)
        zone = _zone(args.signal_tz)
    except (ValueError, SignalFileError) as err:
        return _fail(str(err))
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
    days = int(np.ceil((t0 + args.hours * 3600.0) / 86_400.0))
    try:
        fleet = multi_day_fleet(args.evs, max(days, 1), seed, None if args.fleet == "seed" else behaviour_fleet)
    except FleetDataError as err:
        return _fail(str(err))
    build_s = time.perf_counter() - t_wall
    rng = np.random.default_rng(seed + 1)
    can_discharge = rng.random(len(fleet)) < args.v2g_share

    t_a = time.perf_counter()
    if args.model:
        try:
            model = StateSpaceModel.load(args.model)
        except ValueError as err:
            return _fail(str(err))
        if model.ns != rc.soc_bins:
            return _fail(f"{args.model}: model has {model.ns} SoC bins, [regulation] soc_bins is {rc.soc_bins}")
        how = f"loaded from {args.model}"
    else:
        sample = fleet.take(np.arange(min(len(fleet), 2000)))
        model = estimate_model(sample, ns=rc.soc_bins, learning_rate=rc.learning_rate, duration_s=900.0,
                               dt_s=rc.step_s, seed=seed)  # fmt: skip
        how = f"estimated in test mode on {len(sample):,} EVs x 15 min"
    est_s = time.perf_counter() - t_a
    settings = TrackerSettings(soc_force_charge=rc.soc_force_charge, min_hold_s=rc.min_hold_s, soc_cv=rc.soc_cv,
                               safety_margin=rc.safety_margin, departure_sd_s=rc.departure_sd_s,
                               early_share=rc.early_share,
                               slack_margin_s=rc.slack_margin_s if args.slack_margin_s is None
                               else args.slack_margin_s)  # fmt: skip
    median = rc.latency_median_s if args.latency_s is None else max(args.latency_s, 1e-3)
    cond = Conditions(latency_median_s=median, latency_p99_s=max(rc.latency_p99_s, median),
                      command_loss_share=rc.command_loss_share, meter_interval_s=rc.meter_interval_s,
                      meter_delay_s=rc.meter_delay_s, departure_sd_s=rc.departure_sd_s,
                      early_share=rc.early_share)  # fmt: skip
    t_r = time.perf_counter()
    n_hours = int(np.ceil(args.hours))

    def progress(done: int) -> None:  # on stderr, terminal or not: stdout keeps only the results
        print(f"evsite regulate: hour {done}/{n_hours} simulated (Ctrl-C stops with the hours scored so far)",
              file=sys.stderr, flush=True)  # fmt: skip

    result = run_market(fleet, sig, model, t0_s=t0, dt_s=dt, model_dt_s=rc.step_s, settings=settings,
                        conditions=cond, can_discharge=can_discharge, seed=seed, timer=time.perf_counter,
                        on_hour=progress)  # fmt: skip
    run_s = time.perf_counter() - t_r
    if result.interrupted:
        print(f"evsite regulate: interrupted (Ctrl-C); summary so far: {len(result.hours)} whole hour(s) of "
              f"{n_hours}", file=sys.stderr, flush=True)  # fmt: skip
        _print_hours(result, t0)
        s = result.score
        print(f"composite score over the {len(result.scored_hours)} scored hour(s) done: {s.composite:.2f} "
              f"({'pass' if s.passed else 'FAIL'}, pass mark 0.75); no model saved, nothing exported")  # fmt: skip
        return 130
    if args.save_model:
        try:
            model.save(args.save_model)
        except OSError as err:
            return _fail(f"{args.save_model}: cannot write the model: {err.strerror}")
    kind = "seed-study" if args.fleet == "seed" else "ElaadNL workplace"
    print(f"fleet: {args.evs:,} EVs a day over {max(days, 1)} day(s) ({kind} distributions, seed {seed}) "
          f"built in {build_s:.2f} s; {args.v2g_share:.0%} behind bidirectional chargers")  # fmt: skip
    print(f"signal: {Path(signal_path).name} from {midnight.date()} {args.start}, {args.hours:g} h at {dt:g} s; "
          f"OCPP round trip median {cond.latency_median_s:g} s, p99 {cond.latency_p99_s:g} s, "
          f"{cond.command_loss_share:.1%} lost; meter values every {cond.meter_interval_s:g} s, "
          f"{cond.meter_delay_s:g} s late")  # fmt: skip
    print(f"model: {3 * model.ns} states, A {how} in {est_s:.2f} s")
    _print_hours(result, t0)
    _print_summary(result, run_s, settings.slack_margin_s)
    if args.export:
        try:
            files = export(result, args.export, midnight.replace(tzinfo=zone) if midnight.tzinfo is None
                           else midnight, t0)  # fmt: skip
        except OSError as err:
            return _fail(f"{args.export}: cannot write: {err.strerror}")
        print(f"export: {args.export} ({result.signal.size:,} rows) and {len(files) - 1} hourly plot(s)")
    return 0


def _zone(name: str):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--signal-tz: unknown time zone {name!r}") from None


def _print_hours(r: MarketRun, t0: float) -> None:
    print("hour  base MW  offered MW  deliverable MW  SSM forecast MW  score  switches/car-h")
    for h in r.hours:
        hh = int((h.start_s % 86_400) // 3600)
        sc = f"{h.score.composite:.3f}" if h.offer.capacity_kw > 0 else "  -  "
        rate = h.switches / h.car_hours if h.car_hours > 0 else 0.0
        print(f"{hh:02d}:00 {h.offer.base_kw / 1000:8.3f} {h.offer.capacity_kw / 1000:11.3f} "
              f"{h.deliverable_kw / 1000:15.3f} {h.forecast_kw / 1000:16.3f}  {sc}  {rate:14.2f}")  # fmt: skip


def _print_summary(r: MarketRun, run_s: float, margin_s: float) -> None:
    s, scored = r.score, r.scored_hours
    cap = np.array([h.offer.capacity_kw for h in r.hours]) / 1000.0 if r.hours else np.zeros(1)
    over = sum(1 for h in r.hours if h.offer.capacity_kw > h.deliverable_kw + 1e-6)
    print(f"capacity offered: mean {cap.mean():.2f} MW (min {cap.min():.2f}, max {cap.max():.2f}), fixed before "
          f"each hour; {over} of {len(r.hours)} hour(s) offered more than the fleet could deliver")  # fmt: skip
    print(f"PJM performance ({len(scored)} of {len(r.hours)} hour(s) with capacity scored): "
          f"accuracy {s.accuracy:.3f}  delay {s.delay:.3f} ({s.delay_s:.0f} s)  "
          f"precision {s.precision:.3f}")  # fmt: skip
    print(f"composite score: {s.composite:.2f} ({'pass' if s.passed else 'FAIL'}, pass mark 0.75)")
    fe = r.forecast_errors()
    if fe["hours"]:
        print(f"hour-ahead capacity forecast MAE over the {fe['hours']} hour(s) after the first day "
              f"(mean deliverable {fe['mean_deliverable'] / 1000:.2f} MW): SSM {fe['ssm'] / 1000:.3f} MW, "
              f"persistence {fe['persistence'] / 1000:.3f} MW, "
              f"seasonal-naive {fe['seasonal'] / 1000:.3f} MW")  # fmt: skip
    else:
        print("hour-ahead capacity forecast: compared with persistence and seasonal-naive on runs over 24 h")
    st = r.switch_stats()
    print(f"switching: mode switches per car-hour mean {st['mean']:.2f}, median {st['median']:.2f}, "
          f"p95 {st['p95']:.2f}; {r.commands / max(r.car_hours, 1e-9):.1f} commands per car-hour")  # fmt: skip
    d = r.drivers
    if d.impact.departed:
        print(f"drivers: {d.impact.departed:,} departed; SoC at departure {d.impact.mean_soc_departure:.3f} mean vs "
              f"demanded {d.impact.mean_soc_demanded:.3f}; {d.impact.met_share:.1%} met their demand "
              f"({d.impact.met_share_feasible:.1%} of the {d.impact.feasible:,} whose demand was reachable); "
              f"of those whose demand was reachable by then: {d.early_leavers:,} left 30+ min early and "
              f"{d.early_met_share:.1%} of them met it, {d.at_est_minus_30_share:.1%} had it 30 min before "
              f"the estimated departure (slack margin {margin_s / 60:g} min)")  # fmt: skip
    else:
        print("drivers: none departed during the run")
    print(f"timing: decision {r.decide_s.mean() * 1e3:.2f} ms mean, {r.decide_s.max() * 1e3:.2f} ms max; "
          f"closed loop {run_s:.1f} s")  # fmt: skip


def export(r: MarketRun, path: str, midnight: datetime, t0: float) -> list[Path]:
    """Write the 2 s samples (``time,signal,response,capacity_kw,base_kw``) and one PNG per hour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    n = r.signal.size
    times = pd.Timestamp(midnight) + pd.to_timedelta(t0 + np.arange(n) * r.dt_s, unit="s")
    df = pd.DataFrame({"time": [ts.isoformat() for ts in times], "signal": r.signal, "response": r.response,
                       "capacity_kw": r.capacity_kw, "base_kw": r.base_kw})  # fmt: skip
    out = Path(path)
    df.to_csv(out, index=False, float_format="%.6g")
    files = [out]
    per = round(3600.0 / r.dt_s)
    for i, h in enumerate(r.hours):
        a, b = i * per, min((i + 1) * per, n)
        hh = int((h.start_s % 86_400) // 3600)
        fig, ax = plt.subplots(figsize=(10, 3.5))
        minutes = np.arange(b - a) * r.dt_s / 60.0
        ax.plot(minutes, r.signal[a:b], lw=0.8, label="signal")
        ax.plot(minutes, r.response[a:b], lw=0.8, label="response")
        sc = f"score {h.score.composite:.3f}" if h.offer.capacity_kw > 0 else "no capacity offered (not scored)"
        ax.set_title(f"{times[a]:%Y-%m-%d} {hh:02d}:00  {sc}  (offered {h.offer.capacity_kw / 1000:.2f} MW)")
        ax.set_xlabel("minute of the hour")
        ax.set_ylabel("per unit of capacity")
        ax.legend(loc="upper right")
        fig.tight_layout()
        png = out.with_name(f"{out.name}-{hh:02d}.png")
        fig.savefig(png, dpi=80)
        plt.close(fig)
        files.append(png)
    return files
