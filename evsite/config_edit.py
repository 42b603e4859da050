"""Comment-preserving, validated edits of ``config.toml``.

Why: operators change the site while it runs. An edit must keep their comments and layout (tomlkit), must
be validated as a whole before it touches the file, and must replace the file atomically so that a
watching controller never reads half a file. A rejected edit leaves the file exactly as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError

from evsite.config import Config, ConfigError, parse_config


def parse_value(text: str) -> Any:
    """Read a command-line value as a TOML value (``400``, ``true``, ``[1, 2]``, ``"x"``); else a string."""
    try:
        return tomlkit.parse(f"v = {text}")["v"]
    except ParseError:
        return text


def _descend(doc: Any, parts: list[str], key_path: str) -> Any:
    node = doc
    for i, part in enumerate(parts):
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise ConfigError(f"{key_path}: no element {part!r} in the list at {'.'.join(parts[:i])}") from None
        else:
            if part not in node:
                node[part] = tomlkit.table()
            node = node[part]
    return node


def set_value(text: str, key_path: str, value: Any, source: str = "config") -> tuple[str, Config]:
    """Return the edited TOML text and its validated Config; raise ConfigError and change nothing if invalid.

    ``key_path`` is dotted; list elements are addressed by index (``chargers.0.max_current_a``).
    """
    try:
        doc = tomlkit.parse(text)
    except ParseError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    parts = key_path.split(".")
    if not all(parts):
        raise ConfigError(f"{key_path!r}: not a key path (expected e.g. service.rating_a)")
    parent = _descend(doc, parts[:-1], key_path)
    last = parts[-1]
    if isinstance(parent, list):
        raise ConfigError(f"{key_path}: cannot replace a whole list element; set one of its keys")
    parent[last] = value
    new_text = tomlkit.dumps(doc)
    cfg = parse_config(tomlkit.parse(new_text).unwrap(), f"{source} (after setting {key_path})")
    return new_text, cfg


def get_value(cfg: Config, key_path: str) -> Any:
    """Read a dotted key from the effective (defaults-filled) config."""
    node: Any = cfg.model_dump(mode="json")
    for part in key_path.split("."):
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise ConfigError(f"{key_path}: no element {part!r}") from None
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ConfigError(f"{key_path}: no such key in the config schema")
    return node


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers see old or new, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
