"""``evsite demo``: plan, serve and simulate a whole site in about a minute (see ``evsite.cli.demo_run``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evsite.cli.common import (
    EXIT_CONFIG,
    add_config_arg,
    load_config_or_exit,
    positive_float,
    positive_int,
    refuse_bad_inputs,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="plan, serve and simulate a whole site on an accelerated clock (needs nothing but Python)",
    )
    add_config_arg(p)
    p.add_argument("--chargers", type=positive_int, default=10, help="simulated charge points (default 10)")
    p.add_argument("--connectors", type=positive_int, default=2, help="connectors per charger (default 2)")
    p.add_argument("--hours", type=positive_float, default=24.0, help="simulated hours (default 24)")
    p.add_argument(
        "--speed", type=positive_float, default=2880.0, help="simulated seconds per real second (default 2880)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, default=Path("evsite-demo"), help="report folder: report.md, plots, the plan and the store"
    )
    p.add_argument("--db", metavar="URL", help="store URL (default: a fresh SQLite file in --out each run)")
    p.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard while the demo runs")
    p.add_argument("--keep-running", action="store_true", help="leave the site and dashboard up until Ctrl-C")
    p.add_argument(
        "--regulation",
        action="store_true",
        help="then an hour of frequency regulation (`evsite regulate`, 2,000 EVs) with its PJM score in the report",
    )
    p.add_argument(
        "--signal", metavar="FILE", help="RegD signal CSV for --regulation (default: [regulation] signal_file)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from evsite.cli.demo_run import run_demo
    from evsite.log import configure_logging

    config = load_config_or_exit(args.config)
    configure_logging("warning", config.logging.format)
    signal = args.signal or (str(config.regulation.signal_file) if config.regulation.signal_file else None)
    if args.regulation:
        if signal is None:
            print("evsite demo: --regulation needs a RegD signal: --signal FILE or [regulation] signal_file",
                  file=sys.stderr)  # fmt: skip
            return EXIT_CONFIG
        refused = refuse_bad_inputs("demo", (signal, "signal", False))
        if refused is not None:
            return refused
    console = Console()
    console.print(
        f"[bold]evsite demo[/bold]: {args.chargers} simulated chargers x {args.connectors} connectors, "
        f"{args.hours:g} simulated hours at {args.speed:g}x, service {config.service.rating_a:g} A "
        f"({config.service.rating_kw:.0f} kW)"
    )
    console.print("planning the site (a year of generated building load), then running the simulated day...")

    def done(report) -> None:
        args.on_interrupt = lambda: print(f"the demo had finished; its report: {report.report_path}")
        _print_report(console, report)
        from evsite.cli.demo_report import MEANINGS, NEXT_STEPS

        console.print("\n[bold]What the numbers mean[/bold]")
        for line in MEANINGS:
            console.print(f"  - {line}", markup=False, highlight=False)
        console.print("[bold]What to try next[/bold]")
        for line in NEXT_STEPS:
            console.print(f"  - {line}", markup=False, highlight=False)
        console.print(f"report with plots: {report.report_path}")

    figures: list[str] = []
    args.on_interrupt = lambda: print(figures[-1] if figures else "nothing simulated yet (still planning the site)")
    report = asyncio.run(
        run_demo(
            config,
            args.out,
            chargers=args.chargers,
            connectors=args.connectors,
            hours=args.hours,
            speed=args.speed,
            seed=args.seed,
            db_url=args.db,
            progress=lambda line: console.print(line, highlight=False),
            dashboard=not args.no_dashboard,
            keep_running=args.keep_running,
            on_report=done,
            on_interrupted=figures.append,
        )
    )
    if args.regulation:
        score = _regulation_hour(console, signal, args.seed, Path(report.report_path))
        if score is None:
            return 1
    ok = report.ev_peak_over_limit_kw <= 0.5 and report.ground_truth.get("violations", 1) == 0
    if not ok:
        print("evsite demo: the site limit was not kept (see the tables above)", file=sys.stderr)
    return 0 if ok else 1


def _print_report(console, report) -> None:
    from rich.table import Table

    plan = Table(title="1. Plan (generated office building, a year of hourly load)", show_header=False)
    plan.add_row("chargers without load management (NEC 220.87, 125 %)", f"{report.chargers_without_lm}")
    plan.add_row(
        f"chargers with load management (NEC 625.42, {report.ev_kwh_per_charger_day:g} kWh per charger-day)",
        f"{report.chargers_with_lm}",
    )
    plan.add_row("EV energy cost per day at the plan's schedule", f"${report.cost_per_day:,.2f}")
    plan.add_row("reports (plan.json, buildings.csv, OCPP profile)", report.plan_dir)
    console.print(plan)

    hours = Table(title="2. The simulated day as the central system saw it (kW)")
    for col in ("hour", "building", "EV max", "EV limit (plan)", "building + EV limit", "service x 0.8"):
        hours.add_column(col, justify="right")
    for r in report.hours:
        style = "red" if r.ev_kw_max > r.ev_limit_kw + 0.5 else None
        hours.add_row(
            f"{r.hour:02d}",
            f"{r.building_kw:.1f}",
            f"{r.ev_kw_max:.1f}",
            f"{r.ev_limit_kw:.1f}",
            f"{r.building_kw + r.ev_limit_kw:.1f}",
            f"{r.service_kw:.1f}",
            style=style,
        )
    console.print(hours)

    run = Table(title="3. Chargers, transactions and the store", show_header=False)
    run.add_row("load-management profiles accepted / sent", f"{report.profiles_accepted} / {report.profiles_sent}")
    run.add_row("transactions (closed)", f"{report.transactions} ({report.transactions_closed})")
    run.add_row("energy delivered", f"{report.energy_kwh:.1f} kWh")
    run.add_row("meter values stored", f"{report.meter_values}")
    run.add_row("largest EV power above the plan's limit", f"{report.ev_peak_over_limit_kw:.2f} kW")
    run.add_row("simulated / wall time", f"{report.simulated_hours:.1f} h / {report.wall_s:.1f} s")
    run.add_row("store", report.store_url)
    console.print(run)
    g = report.ground_truth
    truth = Table(title=f"Ground truth (the simulator's own count, at {report.speed:g}x)")
    truth.add_column("measure")
    truth.add_column("value", justify="right")
    truth.add_row("site limit (continuous_load_factor x rating)", f"{g['limit_kw']:.1f} kW")
    truth.add_row("peak total load (building + EVs)", f"{g['peak_kw']:.1f} kW")
    truth.add_row("time over / largest excess", f"{g['seconds_over']:.0f} s / {g['max_excess_kw']:.1f} kW")
    truth.add_row(
        "energy delivered / requested", f"{g['energy_delivered_kwh']:.1f} / {g['energy_requested_kwh']:.1f} kWh"
    )
    truth.add_row("sessions fully served", f"{g['sessions_served']} / {g['sessions']}")
    truth.add_row(f"violations (over for longer than {g['response_s']:g} s)", f"{g['violations']}")
    console.print(truth)


#: fleet of the demo's regulation hour: large enough for a market offer, small enough to run in seconds
REGULATION_EVS = 2000


def _regulation_hour(console, signal: str, seed: int, report_md: Path) -> str | None:
    """Run ``evsite regulate`` for one hour (10:00, when the fleet is parked) and append it to the report.

    Returns the composite score line, or None when the run failed (its message is already printed).
    """
    import contextlib
    import io

    from evsite.cli import main

    argv = ["regulate", "--evs", str(REGULATION_EVS), "--signal", signal, "--hours", "1", "--start", "10:00",
            "--seed", str(seed)]  # fmt: skip
    out = io.StringIO()
    console.print(f"an hour of frequency regulation: evsite {' '.join(argv)}")
    with contextlib.redirect_stdout(out):
        code = main(argv)
    text = out.getvalue()
    if code != 0:
        print(text, end="")
        return None
    score = next((line for line in text.splitlines() if line.startswith("composite score:")), "composite score: ?")
    console.print(text, end="", highlight=False)
    with report_md.open("a", encoding="utf-8") as f:
        f.write(
            "\n## 4. An hour of frequency regulation\n\n"
            f"`evsite {' '.join(argv)}`: a separate fleet of {REGULATION_EVS:,} EVs (the seed study's distributions), "
            "not the demo's chargers, follows the RegD signal from 10:00 and is scored as PJM would "
            "(pass mark 0.75).\n\n```text\n" + text + "```\n"
        )
    return score
