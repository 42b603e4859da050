"""The ``evsite`` command line: one entry point, one module per subcommand under ``evsite.cli``.

Why the split: each subcommand imports its heavy dependencies (pandas, GEKKO, websockets) only when it runs,
so ``evsite --help`` and ``evsite config check`` stay instant.
"""

from __future__ import annotations

import argparse
import sys

from evsite import __version__
from evsite.cli import config_cmd, db, demo, plan, regulate, replay, serve, simulate, status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evsite",
        description="EV charging site controller: OCPP 1.6J central system, site planning, "
        "load management and a regulation aggregator.",
    )
    parser.add_argument("--version", action="version", version=f"evsite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, status, simulate, plan, regulate, replay, demo, config_cmd, db):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # A long command sets ``args.on_interrupt`` once it has work to show: it prints what was finished.
        partial = getattr(args, "on_interrupt", None)
        said = "; summary so far:" if partial is not None else " before any work finished"
        print(f"evsite {args.command}: interrupted (Ctrl-C){said}", file=sys.stderr, flush=True)
        if partial is not None:
            partial()
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
