"""Read recorded charging sessions (ACN-Data JSON or its flattened CSV) into one tidy table.

Why one reader for both forms: ``evsite replay`` and the departure estimate must not care whether a site
exported the ACN-Data API's JSON (``_items`` with RFC 1123 dates and ``userInputs``) or the CSV flattened from
it (ISO-8601 UTC). Both become the same columns:

``session_id``, ``station_id``, ``id_tag`` (the ACN ``userID``; empty when the driver did not use the app),
``connected`` and ``disconnected`` (tz-aware UTC), ``kwh_delivered``, ``kwh_requested`` and
``requested_departure`` (the driver's own input, NaN/NaT where absent), ``timezone`` (the site's zone).

A file that cannot be read, lacks a column or holds an unparseable value raises ``SessionFileError`` naming
the file, the column and the first bad row, never a pandas traceback.
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = (
    "session_id",
    "station_id",
    "id_tag",
    "connected",
    "disconnected",
    "kwh_delivered",
    "kwh_requested",
    "requested_departure",
    "timezone",
)

#: CSV header -> our column (the flattened form in ``shared/data/ev-sessions/SOURCE.md``).
_CSV = {
    "sessionID": "session_id",
    "stationID": "station_id",
    "userID": "id_tag",
    "connectionTime_utc": "connected",
    "disconnectTime_utc": "disconnected",
    "kWhDelivered": "kwh_delivered",
    "kWhRequested": "kwh_requested",
    "requestedDeparture_utc": "requested_departure",
    "timezone": "timezone",
}
_REQUIRED = ("session_id", "station_id", "connected", "disconnected", "kwh_delivered")


class SessionFileError(ValueError):
    """A sessions file the operator must fix; ``str()`` names the file, the column and the row."""


def read_sessions(path: str | Path) -> pd.DataFrame:
    """The sessions in ``path`` (``.json``: ACN-Data API dump; anything else: the flattened CSV), by arrival."""
    path = Path(path)
    if not path.is_file():
        raise SessionFileError(f"{path}: no such sessions file")
    if path.suffix.lower() == ".json":
        raw = _from_json(path)
    else:
        raw = _from_csv(path)
    return _tidy(raw, path)


def _from_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise SessionFileError(f"{path}: cannot read as CSV ({err})") from None
    missing = [src for src, dst in _CSV.items() if dst in _REQUIRED and src not in df.columns]
    if missing:
        raise SessionFileError(
            f"{path}: missing column(s) {', '.join(missing)} (expected the ACN-Data CSV form: {', '.join(_CSV)})"
        )
    renamed = df.rename(columns=_CSV)
    return renamed[[c for c in COLUMNS if c in renamed.columns]]


def _rfc1123(value: object) -> str:
    """ACN-Data dates ("Tue, 01 Dec 2020 13:59:06 GMT") as ISO-8601 so one parser reads both forms."""
    if value in (None, ""):
        return ""
    return parsedate_to_datetime(str(value)).isoformat()


def _from_json(path: Path) -> pd.DataFrame:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SessionFileError(f"{path}: cannot read as JSON ({err})") from None
    items = doc.get("_items") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise SessionFileError(f"{path}: expected an ACN-Data dump (a list, or an object with '_items')")
    rows = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise SessionFileError(f"{path}: _items[{n}] is not an object")
        missing = [
            k for k in ("sessionID", "stationID", "connectionTime", "disconnectTime", "kWhDelivered") if k not in item
        ]
        if missing:
            raise SessionFileError(f"{path}: _items[{n}] lacks {', '.join(missing)}")
        inputs = item.get("userInputs") or [{}]
        last = inputs[-1] if isinstance(inputs[-1], dict) else {}
        try:
            rows.append(
                {
                    "session_id": item["sessionID"],
                    "station_id": item["stationID"],
                    "id_tag": item.get("userID") or "",
                    "connected": _rfc1123(item["connectionTime"]),
                    "disconnected": _rfc1123(item["disconnectTime"]),
                    "kwh_delivered": item["kWhDelivered"],
                    "kwh_requested": last.get("kWhRequested", ""),
                    "requested_departure": _rfc1123(last.get("requestedDeparture")),
                    "timezone": item.get("timezone", ""),
                }
            )
        except (TypeError, ValueError) as err:
            raise SessionFileError(f"{path}: _items[{n}] has a date that is not RFC 1123 ({err})") from None
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _parse_times(df: pd.DataFrame, column: str, path: Path, required: bool) -> pd.Series:
    text = df[column].astype(str).str.strip() if column in df else pd.Series("", index=df.index)
    parsed = pd.to_datetime(text.where(text != ""), utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna() & (text != "") | (parsed.isna() if required else False)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SessionFileError(f"{path}: {column} of row {row + 1} is not a date/time: {text.iloc[row]!r}")
    return parsed


def _parse_numbers(df: pd.DataFrame, column: str, path: Path, required: bool) -> pd.Series:
    text = df[column].astype(str).str.strip() if column in df else pd.Series("", index=df.index)
    values = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = values.isna() & (text != "") | (values.isna() if required else False) | (values < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SessionFileError(f"{path}: {column} of row {row + 1} is not a number >= 0: {text.iloc[row]!r}")
    return values.astype(float)


def _tidy(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    if raw.empty:
        raise SessionFileError(f"{path}: no sessions in the file")
    out = pd.DataFrame(index=raw.index)
    out["session_id"] = raw["session_id"].astype(str)
    out["station_id"] = raw["station_id"].astype(str)
    out["id_tag"] = raw["id_tag"].astype(str) if "id_tag" in raw else ""
    out["connected"] = _parse_times(raw, "connected", path, required=True)
    out["disconnected"] = _parse_times(raw, "disconnected", path, required=True)
    out["kwh_delivered"] = _parse_numbers(raw, "kwh_delivered", path, required=True)
    out["kwh_requested"] = _parse_numbers(raw, "kwh_requested", path, required=False)
    out["requested_departure"] = _parse_times(raw, "requested_departure", path, required=False)
    out["timezone"] = raw["timezone"].astype(str) if "timezone" in raw else ""
    backwards = out["disconnected"] < out["connected"]
    if backwards.any():
        row = int(np.flatnonzero(backwards.to_numpy())[0])
        raise SessionFileError(f"{path}: row {row + 1} ({out['session_id'].iloc[row]}) disconnects before it connects")
    return out.sort_values(["connected", "session_id"], kind="stable").reset_index(drop=True)
