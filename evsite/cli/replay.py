"""`evsite replay`: real charging sessions through the allocation policies against one aggregate cap.

    evsite replay --sessions acn_caltech_sessions.csv --cap-fraction 0.3 --from 2021-08-01 --to 2021-08-31

Runs the same ``allocate`` the live load management runs, one 5-minute snapshot at a time, and prints per
policy the energy delivered as a share of requested, the sessions fully served and the periods over the cap,
next to uncontrolled charging. Conventions follow ACN-Sim so the figures compare with the ACN papers (see
``planning.allocation.replay``). Exit status: 0 on success, 2 for a bad sessions file or arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

from evsite.cli.common import EXIT_CONFIG, positive_float

if TYPE_CHECKING:
    import pandas as pd

    from planning.allocation.replay import ReplayRow, ReplaySessions

log = logging.getLogger("evsite.replay")

ONLINE = ("equal", "priority", "edf", "llf", "mpc")
OFFLINE = ("offline-optimum-energy", "offline-optimum-sessions")

_EPILOG = """\
Conventions (ACN-Sim's, so the figures compare with the ACN papers): periods of --period-min minutes from
local midnight of the first selected day, arrival and departure floored to a period; every EVSE continuous
0..--max-a A at --volts V, so the J1772 6 A minimum is NOT applied (--min-a 0, as ACN-Sim) unless you pass
--min-a 6 (live load management uses 6 A); energy requested = kWhDelivered capped at what --max-a x --volts
gives over the floored stay; the algorithm knows each real departure (perfect information) unless
--estimated-departure; sessions on DC fast chargers (--drop-station, default Caltech's 2-39-81-4550) are
dropped; a session is served when it ends short by less than 0.1 kWh; a violation is a period whose drawn
power exceeds the cap. --cap-fraction is relative to the peak aggregate power of uncontrolled charging (every
car at --max-a from arrival until its request is met) on the same selected sessions."""


def _date(text: str) -> str:
    import pandas as pd

    try:
        pd.Timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2021-08-01 (or 2021-08-01T12:00), got {text!r}"
        ) from None
    return text


def _fraction(text: str) -> float:
    value = positive_float(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"a fraction of the uncontrolled peak is in (0, 1], got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="replay real charging sessions through the allocation policies against one aggregate cap",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sessions", required=True, metavar="FILE", help="ACN-Data sessions: API JSON dump or the CSV form")
    cap = p.add_mutually_exclusive_group(required=True)
    cap.add_argument("--cap-kw", type=positive_float, metavar="X", help="aggregate cap in kW")
    cap.add_argument(
        "--cap-fraction", type=_fraction, metavar="F", help="aggregate cap as a fraction of the uncontrolled peak"
    )
    p.add_argument(
        "--policy",
        default="all",
        choices=(*ONLINE, "uncontrolled", *OFFLINE, "all"),
        metavar="NAME|all",
        help=f"one of {', '.join((*ONLINE, 'uncontrolled', *OFFLINE))}; 'all' runs every one (default)",
    )
    p.add_argument("--period-min", type=positive_float, default=5.0, help="period in minutes (default: 5)")
    p.add_argument("--from", dest="date_from", type=_date, metavar="DATE", help="first local connection date")
    p.add_argument(
        "--to", dest="date_to", type=_date, metavar="DATE", help="last local connection date (a whole day, inclusive)"
    )
    p.add_argument("--tz", help="site time zone (default: the file's timezone column)")
    p.add_argument(
        "--estimated-departure",
        action="store_true",
        help="the algorithm is told the per-id-tag departure estimate (from stays that ended earlier in the file) "
        "instead of the real departure",
    )
    p.add_argument("--min-a", type=float, default=0.0, help="J1772 minimum current in A (default 0, as ACN-Sim)")
    p.add_argument("--max-a", type=positive_float, default=32.0, help="EVSE maximum current in A (default: 32)")
    p.add_argument("--volts", type=positive_float, default=208.0, help="EVSE voltage (default: 208)")
    p.add_argument(
        "--drop-station",
        action="append",
        metavar="ID",
        help="drop this station's sessions (repeatable; default: Caltech's DC fast charger 2-39-81-4550)",
    )
    p.add_argument("--time-limit", type=positive_float, default=120.0, help="seconds per MILP stage (default: 120)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list instead of a table")
    p.set_defaults(func=run)


class ReplayInputError(ValueError):
    """Arguments and file that do not fit together (no sessions selected, no time zone)."""


def _window(args: argparse.Namespace, tz: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    import pandas as pd

    def local(text: str) -> pd.Timestamp:
        ts = pd.Timestamp(text)
        return ts.tz_convert(tz) if ts.tzinfo else ts.tz_localize(tz)

    start = local(args.date_from) if args.date_from else None
    end = None
    if args.date_to:
        end = local(args.date_to)
        if end == end.normalize() and "T" not in args.date_to and " " not in args.date_to.strip():
            end = (end + pd.Timedelta(days=1)).normalize()  # a date: the whole day
    if start is not None and end is not None and end <= start:
        raise ReplayInputError(f"--to {args.date_to} is not after --from {args.date_from}")
    return start, end


def load(args: argparse.Namespace) -> ReplaySessions:
    """Read, select and grid the sessions as the arguments say."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from planning.allocation.acn import read_sessions
    from planning.allocation.departure import estimate_departures
    from planning.allocation.replay import DC_FAST_STATIONS, prepare

    df = read_sessions(args.sessions)
    tz = args.tz
    if tz is None:
        zones = sorted({z for z in df["timezone"] if z and z != "nan"})
        if len(zones) != 1:
            found = ", ".join(zones) if zones else "none"
            raise ReplayInputError(
                f"{args.sessions}: cannot tell the site's time zone (timezone column: {found}); pass --tz"
            )
        tz = zones[0]
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReplayInputError(f"unknown time zone {tz!r} (expected an IANA name like America/Los_Angeles)") from None
    start, end = _window(args, tz)
    estimate = estimate_departures(df, df, tz) if args.estimated_departure else None
    rs = prepare(
        df,
        tz=tz,
        period_min=args.period_min,
        start=start,
        end=end,
        max_a=args.max_a,
        volts=args.volts,
        drop_stations=tuple(args.drop_station) if args.drop_station else DC_FAST_STATIONS,
        estimated_departure=estimate,
    )
    if len(rs) == 0:
        span = f"{df['connected'].min():%Y-%m-%d} to {df['connected'].max():%Y-%m-%d} UTC"
        raise ReplayInputError(f"{args.sessions}: no sessions connected in the selected dates (the file spans {span})")
    return rs


def rows_for(
    rs: ReplaySessions, cap_kw: float, policy: str, args: argparse.Namespace, rows: list[ReplayRow] | None = None
) -> list[ReplayRow]:
    """The table rows ``policy`` asks for (uncontrolled always included, for comparison), appended to ``rows``
    as each finishes (a Ctrl-C shows those), with a progress line per row on stderr."""
    from evsite.log import log_event
    from planning.allocation.offline import offline_optimum_energy, offline_optimum_sessions
    from planning.allocation.replay import score, simulate, uncontrolled

    names = [*ONLINE, "uncontrolled", *OFFLINE] if policy == "all" else [policy]
    if "uncontrolled" not in names:
        names.append("uncontrolled")
    rows = [] if rows is None else rows
    for name in names:
        note = ""
        if name == "uncontrolled":
            delivered, power = uncontrolled(rs)
        elif name == "offline-optimum-energy":
            delivered, power = offline_optimum_energy(rs, cap_kw)
        elif name == "offline-optimum-sessions":
            delivered, power, note = offline_optimum_sessions(rs, cap_kw, time_limit_s=args.time_limit)
        else:
            delivered, power = simulate(rs, cap_kw, name, min_a=args.min_a)
        row = score(rs, name, delivered, power, cap_kw, note)
        log_event(log, "replay_row", **row.as_json(), cap_kw=cap_kw)
        rows.append(row)
        print(f"evsite replay: policy {len(rows)}/{len(names)} done ({name})", file=sys.stderr, flush=True)
    return rows


def _table(rows: list[ReplayRow], rs: ReplaySessions, cap_kw: float, peak_kw: float, args: argparse.Namespace) -> str:
    departure = "per-id-tag estimate" if args.estimated_departure else "real (perfect information)"
    lines = [
        f"{len(rs)} sessions from {rs.start:%Y-%m-%d %H:%M %Z}, {rs.requested_kwh.sum():.1f} kWh requested; "
        f"{rs.period_s / 60:g}-min periods; EVSE {args.min_a:g}-{rs.max_a:g} A at {rs.kw_per_a * 1000:g} V; "
        f"departure known to the policy: {departure}",
        f"cap {cap_kw:.2f} kW = {cap_kw / peak_kw:.1%} of the uncontrolled peak {peak_kw:.2f} kW",
        "",
        f"{'policy':<26}{'energy':>9}{'served':>12}{'violations':>12}",
    ]
    for r in rows:
        lines.append(
            f"{r.policy:<26}{r.energy_share:>9.2%}{f'{r.sessions_served}/{r.sessions}':>12}{r.violations:>12}"
            + (f"  ({r.note})" if r.note else "")
        )
    lines.append("")
    lines.append("energy: delivered / requested; served: short by < 0.1 kWh; violations: periods over the cap")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from planning.allocation.acn import SessionFileError
    from planning.allocation.offline import OptimumError
    from planning.allocation.replay import uncontrolled_peak_kw

    try:
        rs = load(args)
        peak = uncontrolled_peak_kw(rs)
        cap_kw = args.cap_kw if args.cap_kw is not None else args.cap_fraction * peak
        rows: list[ReplayRow] = []
        args.on_interrupt = lambda: _print(rows, rs, cap_kw, peak, args)
        rows_for(rs, cap_kw, args.policy, args, rows)
    except (SessionFileError, ReplayInputError) as err:
        print(f"evsite replay: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except OptimumError as err:
        print(f"evsite replay: {err}", file=sys.stderr)
        return 1
    _print(rows, rs, cap_kw, peak, args)
    return 0


def _print(rows: list[ReplayRow], rs: ReplaySessions, cap_kw: float, peak_kw: float, args: argparse.Namespace) -> None:
    """The rows as JSON (``--json``) or the table; also what a Ctrl-C shows of the rows finished."""
    if args.json:
        print(json.dumps([r.as_json() for r in rows]))
    else:
        print(_table(rows, rs, cap_kw, peak_kw, args))
