"""``evsite config``: check, show and edit ``config.toml`` safely.

evsite config check [FILE]            validate; exit 2 with key paths when invalid
evsite config show [FILE] [--key K]   the effective config (defaults filled in), or one value
evsite config set KEY VALUE [--config FILE]
                                      comment-preserving edit, validated before the file is touched
evsite config hash-password           read a charger password from stdin, print its hash
evsite config new-token --name N [--role read|operator]
                                      a random API token and the [[api.tokens]] entry holding its digest
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import tomlkit

from evsite.cli.common import EXIT_CONFIG
from evsite.config import ConfigError, load_config
from evsite.config_edit import get_value, parse_value, set_value, write_atomic
from evsite.passwords import hash_password


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check, show and edit config.toml")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    c = csub.add_parser("check", help="validate a config file")
    c.add_argument("file", nargs="?", default="config.toml")
    c.set_defaults(func=_check)

    s = csub.add_parser("show", help="print the effective config (defaults filled in)")
    s.add_argument("file", nargs="?", default="config.toml")
    s.add_argument("--key", help="dotted key path, e.g. service.rating_a")
    s.add_argument("--json", action="store_true", help="JSON instead of TOML")
    s.set_defaults(func=_show)

    e = csub.add_parser("set", help="set one key (validated; comments kept; atomic write)")
    e.add_argument("key", help="dotted key path; list elements by index, e.g. chargers.0.max_current_a")
    e.add_argument("value", help='a TOML value: 400, true, "text", [1, 2]')
    e.add_argument("--config", default="config.toml", metavar="FILE")
    e.set_defaults(func=_set)

    h = csub.add_parser("hash-password", help="hash a charger password for [[chargers]].password_hash")
    h.set_defaults(func=_hash)

    t = csub.add_parser("new-token", help="make an HTTP API token; prints it once and its [[api.tokens]] entry")
    t.add_argument("--name", required=True, help="who holds it (recorded with every write it makes)")
    t.add_argument("--role", choices=("read", "operator"), default="read")
    t.set_defaults(func=_new_token)


def _check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as err:
        print(f"evsite: {err}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"{args.file}: ok ({len(cfg.chargers)} charger(s), {len(cfg.id_tags)} id tag(s), "
        f"service {cfg.service.rating_a:g} A at {cfg.service.voltage_v:g} V, {cfg.service.phases} phase(s))"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file if Path(args.file).exists() else None)
        data = get_value(cfg, args.key) if args.key else cfg.model_dump(mode="json", exclude_none=True)
    except ConfigError as err:
        print(f"evsite: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json or not isinstance(data, dict):
        print(json.dumps(data, indent=2))
    else:
        print(_as_toml(data), end="")
    return 0


def _as_toml(data: dict[str, Any]) -> str:
    """TOML for a (section of the) config. TOML has no null: unset keys are dropped from the tables and
    listed in a comment instead, so ``--key service`` shows that ``evse_rating_kw`` exists but is unset."""
    unset: list[str] = []

    def strip(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            kept = {}
            for k, v in node.items():
                if v is None:
                    unset.append(f"{path}{k}")
                else:
                    kept[k] = strip(v, f"{path}{k}.")
            return kept
        if isinstance(node, list):
            return [strip(v, f"{path}{i}.") for i, v in enumerate(node)]
        return node

    text = tomlkit.dumps(strip(data, ""))
    if unset:
        text += f"# unset (no value): {', '.join(unset)}\n"
    return text


def _set(args: argparse.Namespace) -> int:
    path = Path(args.config)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        new_text, _ = set_value(text, args.key, parse_value(args.value), str(path))
    except ConfigError as err:
        print(f"evsite: rejected, {path} unchanged: {err}", file=sys.stderr)
        return EXIT_CONFIG
    write_atomic(path, new_text)
    print(f"{path}: {args.key} = {args.value}")
    return 0


def _hash(args: argparse.Namespace) -> int:
    password = getpass.getpass("charger password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    try:
        print(hash_password(password))
    except ValueError as err:
        print(f"evsite: {err}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _new_token(args: argparse.Namespace) -> int:
    """Only the digest goes into config.toml; the token itself is shown once, here."""
    from controller.api.auth import new_token, token_digest

    token = new_token()
    print(f"token (give it to {args.name}; it is not stored anywhere): {token}", file=sys.stderr)
    print(f'\n[[api.tokens]]\nname = "{args.name}"\nsha256 = "{token_digest(token)}"\nrole = "{args.role}"')
    return 0
