"""Meter files as users have them: US dates, split date/time, ';' and decimal commas, encodings, units, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evsite.cli import main
from planning.errors import PlanningError
from planning.meter import CsvFormat, read_meter
from tests.planning.conftest import office_like

CONFIG = """
[service]
rating_a = {rating}
[planning]
k_max = 6
{tz}
"""


def _cfg(tmp_path: Path, rating: float = 600, tz: str | None = "America/Chicago") -> Path:
    f = tmp_path / "config.toml"
    f.write_text(CONFIG.format(rating=rating, tz=f'site_timezone = "{tz}"' if tz else ""))
    return f


def _series(days: int = 3) -> pd.Series:
    return office_like(days=days)


@pytest.mark.parametrize(
    ("writer", "fmt"),
    [
        # US dates, 12-hour clock
        (
            lambda s: "Date,kW\n" + "".join(f"{t:%m/%d/%Y %I:%M %p},{v}\n" for t, v in s.items()),
            CsvFormat(date_format="%m/%d/%Y %I:%M %p"),
        ),
        # separate date and time columns
        (
            lambda s: "Day,Clock,kW\n" + "".join(f"{t:%Y-%m-%d},{t:%H:%M},{v}\n" for t, v in s.items()),
            CsvFormat(time_columns=("Day", "Clock")),
        ),
        # European: ';' separator, decimal comma, day-first dates
        (
            lambda s: (
                "Zeit;Leistung\n"
                + "".join(f"{t:%d.%m.%Y %H:%M};{f'{v:.3f}'.replace('.', ',')}\n" for t, v in s.items())
            ),
            CsvFormat(sep=";", decimal=",", date_format="%d.%m.%Y %H:%M", time_columns=("Zeit",)),
        ),
    ],
    ids=["us-dates", "two-columns", "semicolon-decimal-comma"],
)
def test_each_format_reads_the_same_kw(tmp_path: Path, writer, fmt: CsvFormat) -> None:
    s = _series()
    f = tmp_path / "m.csv"
    f.write_text(writer(s))
    [m] = read_meter(f, fmt=fmt)
    assert list(m.kw.index) == list(s.index)
    assert np.allclose(m.kw.to_numpy(), s.to_numpy(), atol=1e-3)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_other_encodings(tmp_path: Path, encoding: str) -> None:
    s = _series()
    f = tmp_path / "m.csv"
    f.write_bytes(("timestamp,Bâtiment\n" + "".join(f"{t},{v}\n" for t, v in s.items())).encode(encoding))
    with pytest.raises(PlanningError, match="--encoding"):
        read_meter(f)
    [m] = read_meter(f, fmt=CsvFormat(encoding=encoding))
    assert m.name == "Bâtiment" and np.allclose(m.kw.to_numpy(), s.to_numpy())


@pytest.mark.parametrize(("unit", "factor"), [("W", 1000.0), ("Wh", 1000.0), ("kWh", 1.0), ("kW", 1.0)])
def test_units(tmp_path: Path, unit: str, factor: float) -> None:
    s = _series()
    f = tmp_path / "m.csv"
    f.write_text("timestamp,load\n" + "".join(f"{t},{v * factor}\n" for t, v in s.items()))
    [m] = read_meter(f, unit=unit)
    assert np.allclose(m.kw.to_numpy(), s.to_numpy())  # hourly: kWh per hour == mean kW


def test_us_dates_without_a_format_say_which_flag(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("Date,kW\n13/01/2024 00:00,1\n")
    with pytest.raises(PlanningError, match="--date-format"):
        read_meter(f)


def _run(tmp_path: Path, meter: Path, *extra: str, cfg: Path | None = None) -> int:
    return main(
        [
            "plan",
            "--meter",
            str(meter),
            "--config",
            str(cfg or _cfg(tmp_path)),
            "--out",
            str(tmp_path / "out"),
            "--no-plots",
            *extra,
        ]
    )


def _write(tmp_path: Path, s: pd.Series, name: str = "m.csv", scale: float = 1.0) -> Path:
    f = tmp_path / name
    f.write_text("timestamp,kW\n" + "".join(f"{t},{v * scale}\n" for t, v in s.items()))
    return f


def test_empty_file_is_a_message(tmp_path: Path, capsys) -> None:
    f = tmp_path / "empty.csv"
    f.write_text("")
    assert _run(tmp_path, f) == 2  # like every command's missing or empty input (tests/evsite/test_cli_inputs.py)
    err = capsys.readouterr().err
    assert "empty" in err and "Traceback" not in err


def test_wrong_time_zone_is_a_message_in_the_same_style(tmp_path: Path, capsys) -> None:
    f = _write(tmp_path, office_like(days=40))
    assert _run(tmp_path, f, "--tz", "America/Chicaco") == 2
    err = capsys.readouterr().err
    assert err.startswith("evsite plan: ") and "site_timezone" in err and "America/Chicaco" in err
    assert "Traceback" not in err and "pydantic" not in err


def test_a_peak_that_only_makes_sense_in_wh_is_flagged(tmp_path: Path, capsys) -> None:
    f = _write(tmp_path, office_like(days=40), scale=1000.0)  # Wh per hour, read as kW
    assert _run(tmp_path, f) == 1
    err = capsys.readouterr().err
    assert "UNIT is likely wrong" in err and "--unit W" in err
    assert _run(tmp_path, f, "--unit", "Wh") == 0


def test_negative_readings_refused_then_reported_with_allow_export(tmp_path: Path, capsys) -> None:
    s = office_like(days=40)
    s.iloc[[100, 101, 300]] = -5.0
    f = _write(tmp_path, s)
    assert _run(tmp_path, f) == 1
    assert "3 negative reading(s)" in capsys.readouterr().err
    assert _run(tmp_path, f, "--allow-export") == 0
    [b] = json.loads((tmp_path / "out" / "plan.json").read_text())["buildings"]
    assert b["cleaning"]["export_readings"] == 3 and any("net-export" in w for w in b["warnings"])


def test_no_time_zone_no_profile_and_plain_progress_lines(tmp_path: Path, capsys) -> None:
    f = _write(tmp_path, office_like(days=40))
    assert _run(tmp_path, f, cfg=_cfg(tmp_path, tz=None)) == 0
    err = capsys.readouterr().err
    assert "no site time zone" in err and "planning 1/1: kW" in err  # not a terminal: plain progress lines
    assert not (tmp_path / "out" / "ocpp_profile.json").exists()
    [b] = json.loads((tmp_path / "out" / "plan.json").read_text())["buildings"]
    assert b["ocpp_profile_file"] is None and any("no OCPP profile" in w for w in b["warnings"])
    assert _run(tmp_path, f, "--tz", "UTC", cfg=_cfg(tmp_path, tz=None)) == 0  # UTC only when asked for
    assert (tmp_path / "out" / "ocpp_profile.json").exists()


def test_two_time_columns_and_semicolons_end_to_end(tmp_path: Path) -> None:
    s = office_like(days=40)
    f = tmp_path / "eu.csv"
    f.write_text(
        "Datum;Uhrzeit;kW\n" + "".join(f"{t:%d/%m/%Y};{t:%H:%M};{f'{v:.2f}'.replace('.', ',')}\n" for t, v in s.items())
    )
    extra = ["--sep", ";", "--decimal", ",", "--time-column", "Datum,Uhrzeit", "--date-format", "%d/%m/%Y %H:%M"]
    assert _run(tmp_path, f, *extra) == 0
    [b] = json.loads((tmp_path / "out" / "plan.json").read_text())["buildings"]
    assert b["max_demand"]["kw"] == pytest.approx(s.max(), abs=0.01)
