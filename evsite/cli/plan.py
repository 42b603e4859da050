"""`evsite plan`: load study, NEC capacity and the cost-optimal charger schedule for one or many meters.

Outputs in ``--out``: ``plan.json`` (everything, per building), ``buildings.csv`` (one row per meter point),
``ocpp_profile*.json`` (the OCPP 1.6 daily Recurring profile load management applies) and PNG plots.
Exit status: 0 when every building was planned, 1 when any could not be (each reason printed), 2 for a bad
config. Heavy libraries are imported inside ``run`` so ``evsite --help`` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from evsite.cli.common import add_config_arg, load_config_or_exit, refuse_bad_inputs

EXIT_PLAN_FAILED = 1
log = logging.getLogger("evsite.plan")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="load study, NEC 220.87/625.42 capacity and charger schedule from meter data",
        description="Plan EV chargers for one building meter file, a multi-column CSV or a folder of CSVs.",
    )
    p.add_argument("--meter", required=True, metavar="FILE|DIR", help="meter CSV (one or many points) or a folder")
    add_config_arg(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--method", choices=["evsite", "seed"], help="optimisation model (default: planning.method)")
    p.add_argument("--columns", help="comma-separated meter points to plan (default: all)")
    p.add_argument("--tz", help="site time zone (overrides planning.site_timezone)")
    p.add_argument("--data-tz", help="zone of naive timestamps (overrides planning.data_timezone)")
    p.add_argument("--unit", choices=["kW", "kWh", "W", "Wh"], help="meter unit (default: detect kW/kWh)")
    p.add_argument(
        "--date-format", help="strptime format of the timestamps, e.g. '%%m/%%d/%%Y %%H:%%M' (default ISO 8601)"
    )
    p.add_argument(
        "--time-column", help="timestamp column, or two (date,time) joined with a space (default: detect by name)"
    )
    p.add_argument("--sep", default=",", help="field separator (default ','; e.g. ';')")
    p.add_argument("--decimal", default=".", help="decimal mark (default '.'; e.g. ',')")
    p.add_argument("--encoding", default="utf-8", help="file encoding (default utf-8; e.g. latin-1, utf-16)")
    p.add_argument("--allow-export", action="store_true", help="accept negative (net-export) readings; reported")
    p.add_argument("--keep-spikes", action="store_true", help="keep readings the spike/dropout rules flag")
    p.add_argument("--type", dest="building_type", help="building type for every point (e.g. office, multifamily)")
    p.add_argument(
        "--type-from-name", action="store_true", help="use each meter point's name as its type (DOE reference files)"
    )
    p.add_argument("--areas", metavar="CSV", help="CSV of building id and floor area (m2), e.g. Cambridge GIA")
    p.add_argument("--tariff", metavar="JSON", help="tariff file (acnportal or OpenEI URDB JSON)")
    p.add_argument("--workers", type=int, help="processes for many buildings (default: planning.workers)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--profile-purpose",
        choices=["ChargePointMaxProfile", "TxDefaultProfile"],
        default="ChargePointMaxProfile",
        help="chargingProfilePurpose of the written OCPP profile",
    )
    p.set_defaults(func=run)


def _read_areas(path: str) -> dict[str, float]:
    import pandas as pd

    from planning.errors import PlanningError

    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as err:
        raise PlanningError(f"{path}: cannot read the areas CSV ({err})") from None
    area_cols = [c for c in df.columns[1:] if "area" in c.lower() or "gia" in c.lower()]
    if not area_cols:
        raise PlanningError(f"{path}: no area column (expected a header containing 'area' or 'GIA')")
    return {str(k): float(v) for k, v in zip(df.iloc[:, 0], df[area_cols[0]], strict=True)}


def _overrides(args: argparse.Namespace) -> dict:
    updates: dict = {}
    for flag, key in (("tz", "site_timezone"), ("data_tz", "data_timezone"), ("workers", "workers")):
        if getattr(args, flag):
            updates[key] = getattr(args, flag)
    if args.allow_export:
        updates["allow_export"] = True
    if args.keep_spikes:
        updates["keep_spikes"] = True
    return updates


def _short(text: str, limit: int = 70) -> str:
    """The head of a message for the table (the full text is in plan.json and on stderr)."""
    head = text.split(": ", 1)[0] if text.startswith(("power factor", "the meter is")) else text
    return head if len(head) <= limit else head[: limit - 3] + "..."


def print_summary(results: list, file=None) -> None:
    """One row per building: what a site owner asks first, each number with its unit (rich table)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from planning.pipeline import BuildingFailure

    file = file or sys.stdout
    table = Table(
        title="evsite plan ($/day: the day's EV energy at the tariff's prices + demand-charge share; "
        "full warnings and assumptions: plan.json)",
        show_lines=False,
    )
    for col in ("building", "max demand (when)", "service", "chargers no LM", "chargers with LM", "$/day", "warnings"):
        table.add_column(col, overflow="fold")
    for r in results:
        if isinstance(r, BuildingFailure):
            table.add_row(r.name, "-", "-", "-", "-", "-", Text(f"NOT PLANNED: {_short(r.error, 90)}"))
            continue
        md = r.max_demand
        with_lm = f"{r.chargers_with_lm} (energy bound)"
        if r.sizing:
            with_lm = f"{r.chargers_with_lm} (simulated)"
            if r.chargers_with_lm_is_lower_bound:
                with_lm = f"{r.chargers_with_lm_text()} (search limit)"
        table.add_row(
            r.name,
            f"{md['kw']:.1f} kW ({md['at']}, {md['interval_min']:g}-min)",
            r.service.get("description", ""),
            str(r.nec["chargers_without_lm"]),
            with_lm,
            f"{r.cost_per_day:.2f}",
            Text("; ".join(_short(w) for w in r.warnings) or "-"),  # Text: '[service]' is not rich markup
        )
    tty = hasattr(file, "isatty") and file.isatty()
    Console(file=file, width=None if tty else 200).print(table)


def run(args: argparse.Namespace) -> int:
    cfg = load_config_or_exit(args.config)
    refused = refuse_bad_inputs(
        "plan",
        (args.meter, "meter", True),
        (args.areas, "areas", False),
        (args.tariff, "tariff", False),
        (cfg.planning.ev_sessions_file, "EV sessions", False),
    )
    if refused is not None:
        return refused
    from functools import partial

    from pydantic import ValidationError

    from evsite.config import format_validation_error
    from evsite.log import configure_logging, log_event
    from planning.errors import PlanningError
    from planning.meter import CsvFormat, read_meters
    from planning.pipeline import BuildingFailure, BuildingPlan, plan_many
    from planning.report import write_outputs, write_plots

    configure_logging(cfg.logging.level, cfg.logging.format)
    planning = cfg.planning
    updates = _overrides(args)
    if updates:
        try:
            planning = type(planning).model_validate(planning.model_dump() | updates)
        except ValidationError as err:
            print(f"evsite plan: {format_validation_error(err, 'command line')}", file=sys.stderr)
            return 2
    if planning.site_timezone is None:
        print(
            "evsite plan: warning: no site time zone (--tz or [planning] site_timezone): days are the file's own "
            "clock and no OCPP profile is written (UTC is not assumed; give --tz UTC if the site runs on UTC)",
            file=sys.stderr,
        )
    tariff_cfg = cfg.tariff.model_copy(update={"file": Path(args.tariff)}) if args.tariff else cfg.tariff
    cfg = cfg.model_copy(update={"planning": planning, "tariff": tariff_cfg})
    out = Path(args.out)
    time_cols = tuple(c.strip() for c in args.time_column.split(",")) if args.time_column else ()
    if len(time_cols) > 2:
        print("evsite plan: --time-column takes one column or two (date,time)", file=sys.stderr)
        return 2
    fmt = CsvFormat(
        sep=args.sep, decimal=args.decimal, encoding=args.encoding, date_format=args.date_format, time_columns=time_cols
    )
    try:
        meters = read_meters(
            args.meter,
            data_tz=planning.data_timezone,
            site_tz=planning.site_timezone,
            unit=args.unit or planning.meter_unit,
            columns=[c.strip() for c in args.columns.split(",")] if args.columns else None,
            fmt=fmt,
        )
        areas = _read_areas(args.areas) if args.areas else {}
        if not meters:
            raise PlanningError(f"{args.meter}: no meter points selected")
        types = {m.name: args.building_type for m in meters} if args.building_type else {}
        if args.type_from_name:
            types = {m.name: m.name for m in meters}
        post = None if args.no_plots else partial(write_plots, out_dir=out)
        out.mkdir(parents=True, exist_ok=True)
        finished: list[BuildingPlan | BuildingFailure] = []

        def partial() -> None:
            print_summary(finished)
            print(f"planned {len(finished)}/{len(meters)} meter point(s) before Ctrl-C; no report written")

        args.on_interrupt = partial
        results = plan_many(
            meters,
            cfg,
            types=types,
            areas=areas,
            method=args.method,
            progress=not args.no_progress,
            post=post,
            finished=finished,
        )
        meta = {
            "generated_by": "evsite plan",
            "meter": str(args.meter),
            "method": args.method or planning.method,
            "service": cfg.service.model_dump(mode="json"),
            "planning": planning.model_dump(mode="json"),
            "tariff": tariff_cfg.model_dump(mode="json"),
            "ev_ceiling_key": "buildings[].ev_ceiling_kw: {tz, by_day_type: {weekday: [24], weekend: [24]}} kW",
        }
        paths = write_outputs(results, out, meta=meta, purpose=args.profile_purpose)
    except PlanningError as err:
        print(f"evsite plan: {err}", file=sys.stderr)
        return EXIT_PLAN_FAILED
    except OSError as err:
        print(f"evsite plan: cannot write outputs to {out}: {err}", file=sys.stderr)
        return EXIT_PLAN_FAILED
    failed = 0
    for r in results:
        if isinstance(r, BuildingFailure):
            failed += 1
            named = r.error if r.error.startswith(f"{r.name}:") else f"{r.name}: {r.error}"
            print(f"evsite plan: {named}", file=sys.stderr)
            log_event(log, "plan_failed", logging.WARNING, building=r.name, error=r.error)
        elif isinstance(r, BuildingPlan):
            for w in r.warnings:
                log_event(log, "plan_warning", logging.WARNING, building=r.name, warning=w)
            log_event(
                log,
                "plan_done",
                building=r.name,
                method=r.method,
                k=r.k,
                max_demand_kw=round(r.max_demand["kw"], 1),
                chargers_without_lm=r.nec["chargers_without_lm"],
                chargers_with_lm=r.chargers_with_lm,
                chargers_with_lm_is_lower_bound=r.chargers_with_lm_is_lower_bound,
                cost_per_day=r.cost_per_day,
                peak_ev_limit_kw=round(max(r.schedule_kw), 1),
                reason=f"{r.ev_ceiling_kw.get('basis')}; EV limit <= {cfg.service.continuous_load_factor} x service "
                f"- load",
            )
    print_summary(results)
    print(
        f"planned {len(results) - failed}/{len(results)} meter point(s); report {paths['json']}, table {paths['csv']}",
        file=sys.stdout,
    )
    return EXIT_PLAN_FAILED if failed else 0
