"""``evsite demo``: plan, serve and simulate a whole site in about a minute (see ``evsite.cli.demo_run``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evsite.cli.common import add_config_arg, load_config_or_exit, positive_float, positive_int


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from evsite.cli.demo_run import run_demo
    from evsite.log import configure_logging

    config = load_config_or_exit(args.config)
    configure_logging("warning", config.logging.format)
    console = Console()
    console.print(
        f"[bold]evsite demo[/bold]: {args.chargers} simulated chargers x {args.connectors} connectors, "
        f"{args.hours:g} simulated hours at {args.speed:g}x, service {config.service.rating_a:g} A "
        f"({config.service.rating_kw:.0f} kW)"
    )
    console.print("planning the site (a year of generated building load), then running the simulated day...")

    def done(report) -> None:
        _print_report(console, report)
        console.print(f"report with plots: {report.report_path}")

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
        )
    )
    ok = report.ev_peak_over_limit_kw <= 0.5 and report.ground_truth.get("violations", 1) == 0
    if not ok:
        print("evsite demo: the site limit was not kept (see the tables above)", file=sys.stderr)
    return 0 if ok else 1


def _print_report(console, report) -> None:
    from rich.table import Table

    plan = Table(title="1. Plan (generated office building, a year of hourly load)", show_header=False)
    plan.add_row("chargers without load management (NEC 220.87, 125 %)", f"{report.chargers_without_lm}")
    plan.add_row("chargers with load management (NEC 625.42)", f"{report.chargers_with_lm}")
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
