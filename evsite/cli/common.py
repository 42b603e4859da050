"""Helpers every subcommand shares: the ``--config`` flag and loading it with a clean exit on errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _bounded(kind: type, low: float, inclusive: bool) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses ``kind`` and refuses values below ``low`` (or at it, unless inclusive)."""
    noun = "a whole number" if kind is int else "a number"
    bound = f">= {low:g}" if inclusive else f"> {low:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        ok = value >= low if inclusive else value > low  # NaN fails both
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


positive_int = _bounded(int, 0, inclusive=False)
positive_float = _bounded(float, 0, inclusive=False)
non_negative_float = _bounded(float, 0, inclusive=True)


def input_file_problem(path: str | Path, what: str, folder_ok: bool = False) -> str | None:
    """``PATH: WHAT file not found`` / ``... is empty`` (None when the file is usable).

    Every command checks its input files this way before any work starts, so a typo in a path reads the same
    everywhere. With ``folder_ok`` a folder is accepted when it holds at least one file.
    """
    p = Path(path)
    if p.is_dir() and folder_ok:
        return None if any(c.is_file() for c in p.iterdir()) else f"{p}: {what} folder is empty"
    if not p.exists():
        return f"{p}: {what} file not found"
    if p.is_dir():
        return f"{p}: {what} file expected, got a folder"
    if p.stat().st_size == 0:
        return f"{p}: {what} file is empty"
    return None


def refuse_bad_inputs(command: str, *inputs: tuple[str | Path | None, str, bool]) -> int | None:
    """Check ``(path, what, folder_ok)`` inputs in order; print the first problem as
    ``evsite COMMAND: PATH: WHAT file not found`` and return exit code 2, or None when all are usable."""
    for path, what, folder_ok in inputs:
        problem = None if path is None else input_file_problem(path, what, folder_ok)
        if problem is not None:
            print(f"evsite {command}: {problem}", file=sys.stderr)
            return EXIT_CONFIG
    return None
