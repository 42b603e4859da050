"""`evsite simulate`: placeholder until its issue lands (the owner replaces this module)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="(not built yet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("evsite simulate: not built yet", file=sys.stderr)
    return 1
