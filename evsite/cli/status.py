"""``evsite status``, ``evsite chargers``, ``evsite transactions [--open]``, ``evsite send CP ACTION [JSON]``:
the operator API from the terminal (a running ``evsite serve`` with ``[api] enabled``; token in
``EVSITE_API_TOKEN``).

``send`` takes the OCPP action name (``RemoteStopTransaction``) or the API's short name (``remote-stop``) and a
JSON object with the API's fields, e.g. ``evsite send CP1 RemoteStopTransaction '{"transaction_id": 7}'``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from evsite.cli.api_client import ApiClient, add_api_args, run_or_report
from evsite.cli.common import EXIT_CONFIG

#: OCPP action -> API path segment under /api/chargers/<id>/
ACTIONS = {
    "RemoteStartTransaction": "remote-start",
    "RemoteStopTransaction": "remote-stop",
    "Reset": "reset",
    "UnlockConnector": "unlock",
    "ChangeAvailability": "availability",
    "TriggerMessage": "trigger",
    "ClearCache": "clear-cache",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the running site at a glance: load, limit, chargers (via the HTTP API)")
    add_api_args(p)
    p.set_defaults(func=lambda a: run_or_report(_status, a))

    p = sub.add_parser("chargers", help="every charger: online, connector status, limit and why (via the API)")
    add_api_args(p)
    p.set_defaults(func=lambda a: run_or_report(_chargers, a))

    p = sub.add_parser("transactions", help="transactions, newest first (via the API)")
    add_api_args(p)
    p.add_argument("--open", action="store_true", help="only open transactions")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(func=lambda a: run_or_report(_transactions, a))

    p = sub.add_parser("send", help="send an OCPP command to a charger (operator token)")
    add_api_args(p)
    p.add_argument("cp_id", metavar="CP", help="charge point id")
    p.add_argument("action", metavar="ACTION", help=f"one of: {', '.join(ACTIONS)}")
    p.add_argument("body", metavar="JSON", nargs="?", default="{}", help="the command's fields as a JSON object")
    p.set_defaults(func=_send)


def _kw(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _status(client: ApiClient, args: argparse.Namespace) -> int:
    site = client.request("GET", "/api/site")
    chargers = client.request("GET", "/api/chargers")
    open_tx = client.request("GET", "/api/transactions?open=true&limit=10000")
    if args.json:
        print(json.dumps({"site": site, "chargers": chargers, "open_transactions": len(open_tx)}, indent=2))
        return 0
    online = sum(c["online"] for c in chargers)
    stale = " (building meter stale)" if site["meter_stale"] else ""
    print(f"site at {site['at']}{stale}")
    print(f"  building {_kw(site['building_kw'])} kW + EV {_kw(site['ev_kw'])} kW = total {_kw(site['total_kw'])} kW")
    print(f"  limit {_kw(site['limit_kw'])} kW, headroom {_kw(site['headroom_kw'])} kW"
          + (f", plan period {site['plan_period']}" if site["plan_period"] else "")
          + (f", tariff {site['tariff_tier']}" if site.get("tariff_tier") else ""))  # fmt: skip
    print(f"chargers: {online} of {len(chargers)} online; open transactions: {len(open_tx)}")
    for c in chargers:
        print(f"  {c['id']:<16} {'online ' if c['online'] else 'offline'}  " + _connectors(c))
    return 0


def _connectors(c: dict[str, Any]) -> str:
    parts = []
    for k in c["connectors"]:
        if k["connector_id"] == 0:
            continue
        limit = "" if k["limit_a"] is None else f" {k['limit_a']:g} A ({k['limit_reason']})"
        parts.append(f"#{k['connector_id']} {k['status'] or '?'}{limit}")
    return ", ".join(parts)


def _chargers(client: ApiClient, args: argparse.Namespace) -> int:
    chargers = client.request("GET", "/api/chargers")
    if args.json:
        print(json.dumps(chargers, indent=2))
        return 0
    print(f"{'charger':<16} {'online':<7} {'conn':>4} {'status':<14} {'limit A':>8} {'power kW':>9}  why / last seen")
    for c in chargers:
        print(f"{c['id']:<16} {'yes' if c['online'] else 'no':<7} {'':>4} {'':<14} {'':>8} {'':>9}  "
              f"last seen {c['last_seen'] or 'never'}, {c['owner']}, {_clock(c.get('clock_offset_s'))}")  # fmt: skip
        for k in c["connectors"]:
            if k["connector_id"] == 0:
                continue
            print(f"{'':<16} {'':<7} {k['connector_id']:>4} {k['status'] or '-':<14} {_kw(k['limit_a']):>8} "
                  f"{_kw(k['power_kw'], 2):>9}  {k['limit_reason'] or ''}")  # fmt: skip
    return 0


def _clock(offset_s: float | None) -> str:
    """The charger's clock against the controller's (estimated from the timestamps it sends)."""
    if offset_s is None:
        return "clock not heard yet"
    return f"clock {offset_s:+.1f} s vs controller"


def _transactions(client: ApiClient, args: argparse.Namespace) -> int:
    query = f"?limit={max(1, args.limit)}" + ("&open=true" if args.open else "")
    txs = client.request("GET", "/api/transactions" + query)
    if args.json:
        print(json.dumps(txs, indent=2))
        return 0
    print(f"{'id':>6} {'charger':<16} {'conn':>4} {'id tag':<20} {'start (UTC)':<20} {'stop (UTC)':<20} "
          f"{'kWh':>8}  reason")  # fmt: skip
    for t in txs:
        start = (t["start_time"] or "-")[:19]
        stop = (t["stop_time"] or "open")[:19]
        print(f"{t['id']:>6} {t['cp_id']:<16} {t['connector_id'] or '-':>4} {t['id_tag'] or '-':<20} {start:<20} "
              f"{stop:<20} {_kw(t['energy_kwh'], 3):>8}  {t['stop_reason'] or ''}")  # fmt: skip
    print(f"{len(txs)} transaction(s){' open' if args.open else ''}")
    return 0


def _send(args: argparse.Namespace) -> int:
    by_lower = {k.lower(): v for k, v in ACTIONS.items()} | {v: v for v in ACTIONS.values()}
    path = by_lower.get(args.action.lower())
    if path is None:
        print(f"evsite send: unknown ACTION {args.action!r} (one of: {', '.join(ACTIONS)})", file=sys.stderr)
        return EXIT_CONFIG
    try:
        body = json.loads(args.body)
    except json.JSONDecodeError as err:
        print(f"evsite send: JSON: not valid JSON at column {err.colno}: {err.msg}", file=sys.stderr)
        return EXIT_CONFIG
    if not isinstance(body, dict):
        print(f"evsite send: JSON: expected an object like '{{\"transaction_id\": 7}}', got {args.body}",
              file=sys.stderr)  # fmt: skip
        return EXIT_CONFIG

    def send(client: ApiClient, a: argparse.Namespace) -> int:
        from urllib.parse import quote

        res = client.request("POST", f"/api/chargers/{quote(a.cp_id, safe='')}/{path}", body or None)
        if a.json:
            print(json.dumps(res, indent=2))
        else:
            print(f"{res['cp_id']}: {res['action']} -> " + ", ".join(f"{k}={v}" for k, v in res["result"].items()))
        return 0

    return run_or_report(send, args)
