"""``evsite db upgrade``: migrate the store to the current schema (``evsite serve`` does it at start too).

Works on an empty database, on a store made before migrations existed, and on a migrated one (no-op when
current). Exit 1 when the store cannot be reached, with the reason.
"""

from __future__ import annotations

import argparse
import sys

from evsite.cli.common import add_config_arg, load_config_or_exit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="store maintenance: `evsite db upgrade` applies schema migrations")
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    u = dsub.add_parser("upgrade", help="migrate the store (store.url, or --db) to the current schema")
    add_config_arg(u)
    u.add_argument("--db", metavar="URL", help="store URL (overrides store.url)")
    u.set_defaults(func=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from controller.store import Store
    from controller.store.migrate import upgrade

    url = args.db or load_config_or_exit(args.config).store.url
    shown = url.split("@")[-1] if "@" in url else url  # never print a password from the URL
    try:
        store = Store.open(url, create=False)
        try:
            result = upgrade(store.engine)
        finally:
            store.close()
    except SQLAlchemyError as err:
        print(f"evsite db upgrade: cannot migrate the store at {shown}: {err.__class__.__name__}: {err}",
              file=sys.stderr)  # fmt: skip
        return 1
    before = {None: "empty database", "pre-alembic": "schema before migrations"}.get(result.before, result.before)
    change = "already current" if result.before == result.after else f"upgraded from {before}"
    print(f"store {shown}: revision {result.after} ({change})")
    return 0
