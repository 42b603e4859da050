"""Helpers every subcommand shares: the ``--config`` flag and loading it with a clean exit on errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evsite.config import Config, ConfigError, load_config

EXIT_CONFIG = 2


def add_config_arg(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="config.toml to use (default: %(default)s; built-in defaults when none)",
    )


def load_config_or_exit(path: str | Path | None) -> Config:
    """Load the config; on any problem print the operator-facing message and exit non-zero."""
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"evsite: {err}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
