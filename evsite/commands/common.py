"""Helpers every subcommand shares: the ``--config`` flag and loading it with a clean exit on errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evsite.config import Config, ConfigError, load_config

EXIT_CONFIG = 2
DEFAULT_CONFIG = Path("config.toml")


def add_config_arg(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="config file (default: ./config.toml when it exists, else the built-in defaults)",
    )


def resolve_config_path(path: str | Path | None) -> Path | None:
    """The file a command should read: the one given, else ``./config.toml`` when present, else none."""
    if path is not None:
        return Path(path)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_config_or_exit(path: str | Path | None) -> Config:
    """Load the config; on any problem print the operator-facing message and exit non-zero."""
    try:
        return load_config(resolve_config_path(path))
    except ConfigError as err:
        print(f"evsite: {err}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
