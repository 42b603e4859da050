"""Read building meter files into kW series on the site's local wall clock.

Why one reader for many layouts: operators bring whatever their metering vendor exports. Supported, detected
from the header:

- Onboard/RTEM point export: columns ``time`` and ``raw`` (and optionally ``clean``), ``?`` for missing.
- Generic ``timestamp,kW`` (or several value columns: one meter point per column, e.g. the Cambridge file).
- kWh interval data (a column or file name saying ``kwh``, or ``unit="kWh"``): converted to mean kW by the
  interval length, so 15-minute kWh becomes kW correctly; ``W`` and ``Wh`` are divided by 1000 first.
- ``CsvFormat``: ``;`` separators, decimal commas, other encodings, a strptime date format (US dates), and
  separate date and time columns (joined with a space before parsing).
- CityLearn exports (``step,month,hour,day_type`` and one column per home): timestamps rebuilt from the
  documented start (2016-08-01, hour-ending hours 1..24).

Time zones: timestamps carrying an offset, or a timestamp column named ``*utc*``, are aware; naive ones are
taken in ``data_tz`` when given, else as local wall-clock time. Aware timestamps are converted to ``site_tz``
(the site's local clock, which is what a "day" means for a load profile) and then made naive. The daylight
saving repeats and gaps this creates are left in place for ``planning.cleaning`` to count and repair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from planning.errors import PlanningError

_TIME_NAMES = ("time", "timestamp", "datetime", "date", "datetime_utc", "hour_beginning")
CITYLEARN_START = pd.Timestamp("2016-07-31 23:00")  # row 0 is July, hour-ending 24 (i.e. 23:00-24:00)


@dataclass(frozen=True)
class CsvFormat:
    """How the file is written: separator, decimal mark, encoding, date format, the time column(s)."""

    sep: str = ","
    decimal: str = "."
    encoding: str = "utf-8"
    date_format: str | None = None  # strptime format; None: ISO 8601
    time_columns: tuple[str, ...] = ()  # one, or two (date, time) joined with a space


@dataclass
class StudyLoadSeries:
    """One meter point: kW on the local wall clock, plus where it came from."""

    name: str
    kw: pd.Series  # float kW, naive DatetimeIndex (local wall clock), unsorted/duplicates possible
    source: str
    unit_in: str  # "kW" or "kWh" (what the file held)
    data_tz: str | None  # the time zone the timestamps were read in (None: already local wall clock)
    site_tz: str | None


def _is_time_col(name: str) -> bool:
    low = name.strip().lower()
    return low in _TIME_NAMES or low.startswith(("time", "date", "hour_beginning")) or "timestamp" in low


def _parse_times(
    raw: pd.Series, where: str, data_tz: str | None, site_tz: str | None, date_format: str | None = None
) -> tuple[pd.DatetimeIndex, str | None]:
    """Parse timestamps; return a naive local-wall-clock index and the tz they were read in."""
    text = raw.astype(str).str.strip()
    has_offset = bool(text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True).any())
    fmt = date_format or "ISO8601"
    try:
        if has_offset:
            idx = pd.DatetimeIndex(pd.to_datetime(text, utc=True, format=fmt))
            tz_in: str | None = "UTC"
        else:
            idx = pd.DatetimeIndex(pd.to_datetime(text, format=fmt))
            tz_in = data_tz
    except (ValueError, TypeError) as err:
        hint = "" if date_format else " (not ISO 8601: give --date-format, e.g. '%m/%d/%Y %H:%M' for US dates)"
        raise PlanningError(f"{where}: cannot parse timestamps{hint}: {err}") from None
    if idx.tz is None and tz_in is not None:
        # Localise naive data-time-zone stamps; ambiguous/nonexistent local times become NaT and are counted
        # later as missing rather than guessed.
        idx = idx.tz_localize(tz_in, ambiguous="NaT", nonexistent="NaT")
    if idx.tz is not None:
        target = site_tz or str(idx.tz)
        idx = idx.tz_convert(target).tz_localize(None)
    return idx, tz_in


UNITS = ("kW", "kWh", "W", "Wh")


def _unit_of(col: str, path: Path, unit: str | None) -> str:
    if unit is not None:
        if unit not in UNITS:
            raise PlanningError(f"unit must be one of {', '.join(UNITS)} (got {unit!r})")
        return unit
    if "kwh" in col.lower() or "kwh" in path.name.lower():
        return "kWh"
    return "kW"


def _to_kw(values: pd.Series, index: pd.DatetimeIndex, unit: str) -> pd.Series:
    """kWh (Wh) per interval -> mean kW over the interval (interval = the file's typical step); W -> kW."""
    s = pd.Series(values.to_numpy(dtype=float), index=index)
    if unit in ("W", "Wh"):
        s = s / 1000.0
    if unit in ("kWh", "Wh"):
        steps = index.dropna().sort_values().to_series().diff().dropna()
        steps = steps[steps > pd.Timedelta(0)]
        hours = (steps.median() / pd.Timedelta(hours=1)) if steps.size else 1.0
        s = s / hours
    return s


def read_meter(
    path: str | Path,
    *,
    data_tz: str | None = None,
    site_tz: str | None = None,
    unit: str | None = None,
    columns: list[str] | None = None,
    fmt: CsvFormat | None = None,
) -> list[StudyLoadSeries]:
    """Read one meter file (one or many points). Raises PlanningError naming the file and the problem."""
    p = Path(path)
    f = fmt or CsvFormat()
    if not p.is_file():
        raise PlanningError(f"{p}: meter file not found")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, sep=f.sep, encoding=f.encoding)
    except pd.errors.EmptyDataError:
        raise PlanningError(f"{p}: the file is empty (no header, no readings)") from None
    except UnicodeDecodeError as err:
        raise PlanningError(
            f"{p}: not readable as {f.encoding} ({err.reason} at byte {err.start}): give --encoding, e.g. latin-1"
        ) from None
    except LookupError:
        raise PlanningError(f"{p}: unknown encoding {f.encoding!r} (--encoding)") from None
    except (OSError, pd.errors.ParserError) as err:
        raise PlanningError(f"{p}: not a readable CSV file ({err}); separator {f.sep!r} (--sep)") from None
    if df.empty:
        raise PlanningError(f"{p}: no data rows (only a header)")
    if df.shape[1] == 1 and f.sep == ",":
        raise PlanningError(f"{p}: one column only ({df.columns[0]!r}): if values are separated by ';', give --sep ';'")
    if f.time_columns:
        missing = [c for c in f.time_columns if c not in df.columns]
        if missing:
            raise PlanningError(f"{p}: time column(s) {missing} not found (columns: {list(df.columns)})")
        tcols = list(f.time_columns)
        joined = df[tcols].astype(str).agg(" ".join, axis=1)
        df = df.drop(columns=tcols)
        df.insert(0, "timestamp", joined)
    cols = [c.strip() for c in df.columns]
    df.columns = cols
    lower = [c.lower() for c in cols]

    if {"step", "month", "hour", "day_type"} <= set(lower):  # CityLearn layout
        index = pd.DatetimeIndex(CITYLEARN_START + pd.to_timedelta(df["step"].astype(int), unit="h"))
        value_cols = [c for c in cols if re.fullmatch(r"[Bb]\d+", c)]
        tz_in = None
        default_unit = "kWh"
    elif "time" in lower and "raw" in lower:  # Onboard/RTEM point export
        tcol = cols[lower.index("time")]
        index, tz_in = _parse_times(df[tcol], f"{p}: column {tcol!r}", data_tz, site_tz, f.date_format)
        value_cols = [cols[lower.index("raw")]]
        default_unit = None
    else:
        tcols = [c for c in cols if _is_time_col(c)]
        if not tcols:
            raise PlanningError(f"{p}: no timestamp column (expected one named time/timestamp/datetime; got {cols})")
        tcol = tcols[0]
        if "utc" in tcol.lower() and data_tz is None:
            data_tz = "UTC"
        index, tz_in = _parse_times(df[tcol], f"{p}: column {tcol!r}", data_tz, site_tz, f.date_format)
        value_cols = [c for c in cols if c != tcol]
        default_unit = None
    if columns is not None:
        missing = [c for c in columns if c not in value_cols]
        if missing:
            raise PlanningError(f"{p}: columns {missing} not found (available: {value_cols})")
        value_cols = columns
    if not value_cols:
        raise PlanningError(f"{p}: no value columns")

    out: list[StudyLoadSeries] = []
    for col in value_cols:
        # '?', '' and other non-numbers become NaN here; cleaning counts them as missing.
        text = df[col].str.strip()
        if f.decimal != ".":
            text = text.str.replace(".", "", regex=False).str.replace(f.decimal, ".", regex=False)
        values = pd.to_numeric(text, errors="coerce")
        if values.notna().sum() == 0:
            raise PlanningError(f"{p}: column {col!r} holds no numeric values")
        u = _unit_of(col, p, unit if unit is not None else default_unit)
        out.append(
            StudyLoadSeries(
                name=col if col.lower() != "raw" else p.stem,
                kw=_to_kw(values, index, u),
                source=str(p),
                unit_in=u,
                data_tz=tz_in,
                site_tz=site_tz,
            )
        )
    return out


def read_meters(
    path: str | Path,
    *,
    data_tz: str | None = None,
    site_tz: str | None = None,
    unit: str | None = None,
    columns: list[str] | None = None,
    fmt: CsvFormat | None = None,
) -> list[StudyLoadSeries]:
    """A file, or every ``*.csv`` in a folder (each may hold several points)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.csv"))
        if not files:
            raise PlanningError(f"{p}: folder holds no .csv meter files")
        result: list[StudyLoadSeries] = []
        for f in files:
            result.extend(read_meter(f, data_tz=data_tz, site_tz=site_tz, unit=unit, columns=None, fmt=fmt))
        if columns is not None:
            result = [m for m in result if m.name in columns]
        return result
    return read_meter(p, data_tz=data_tz, site_tz=site_tz, unit=unit, columns=columns, fmt=fmt)


def dst_dates(start: pd.Timestamp, end: pd.Timestamp, tz: str | None) -> set[pd.Timestamp]:
    """Local dates on which ``tz`` changes its UTC offset (where wall-clock gaps/repeats are expected)."""
    if tz is None:
        return set()
    hours = pd.date_range(start.floor("D") - pd.Timedelta(days=1), end.ceil("D") + pd.Timedelta(days=1), freq="h")
    local = hours.tz_localize("UTC").tz_convert(tz).tz_localize(None)
    offset = (local - hours).asi8
    changed = np.flatnonzero(np.diff(offset) != 0) + 1
    return {pd.Timestamp(local[i].date()) for i in changed}
