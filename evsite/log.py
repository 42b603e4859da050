"""Structured event logging.

Why: every limit sent to a charger must be traceable to the reason it was chosen, and operators grep logs.
So components log *events* (a short snake_case name plus key/value fields), not prose:

    log_event(logger, "profile_sent", cp_id="CP1", connector_id=1, limit_a=16.0, reason="site_headroom")

``configure_logging`` renders them either as one JSON object per line (``format = "json"``, for machines)
or as ``event key=value ...`` (``format = "text"``, for people at a terminal).

Peer-supplied strings (charge point ids, id tags, vendor names) end up in fields. In text mode every value
and message that is not plain printable text without spaces, quotes or ``=`` is written as a JSON string
literal (``cp_id="LF\ninjected"``), so a charger cannot forge a log line or hide a field. In JSON mode every
line on the stream is one JSON object: Python warnings and uncaught exceptions go through logging too.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_FIELDS_ATTR = "evsite_fields"


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with structured ``fields`` (kept machine-readable by the formatters below)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS_ATTR: fields}, stacklevel=2)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(getattr(record, _FIELDS_ATTR, {}) or {})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def escape_text(value: Any) -> str:
    """``value`` as one token of a text log line: as is when plain, else a JSON string literal."""
    text = str(value)
    if text and text.isprintable() and text.isascii() and not any(c in text for c in ' "=\\'):
        return text
    return json.dumps(text)


def _escape_message(text: str) -> str:
    """A free-text message keeps its spaces but not its control characters (no forged lines)."""
    return text if text.isprintable() else json.dumps(text)[1:-1]


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger event k=v ...`` for a terminal; peer strings escaped (see module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields = getattr(record, _FIELDS_ATTR, {}) or {}
        kv = " ".join(f"{k}={escape_text(v)}" for k, v in fields.items())
        line = f"{ts} {record.levelname.lower():7} {record.name} {_escape_message(record.getMessage())} {kv}"
        line = line.rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Install one handler on the root logger (idempotent: replaces a previous evsite handler)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_evsite", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._evsite = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    if fmt == "json":
        sys.excepthook = _log_uncaught
    # Third-party chatter that would drown the events.
    for noisy in ("websockets", "ocpp", "apscheduler", "aiomqtt", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """In JSON mode an uncaught exception is one JSON line too, not a bare traceback."""
    logging.getLogger("evsite").critical("uncaught_exception", exc_info=(exc_type, exc, tb))
