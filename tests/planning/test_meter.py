"""Meter ingestion: every supported layout, units, time zones, and the real shared files as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planning.errors import PlanningError
from planning.meter import read_meter, read_meters


def test_rtem_export_with_question_marks(tmp_path: Path) -> None:
    idx = pd.date_range("2024-03-01", periods=96, freq="15min", tz="America/New_York")
    raw = [f"{v:.2f}" for v in np.linspace(10, 20, 96)]
    raw[5] = "?"
    raw[50] = "?"
    text = "time,raw,clean\n" + "".join(f"{t.isoformat()},{r},\n" for t, r in zip(idx, raw, strict=True))
    f = tmp_path / "point_42.csv"
    f.write_text(text)
    [m] = read_meter(f, site_tz="America/New_York")
    assert m.name == "point_42" and m.unit_in == "kW"
    assert m.kw.isna().sum() == 2
    assert m.kw.index[0] == pd.Timestamp("2024-03-01 00:00")  # local wall clock, naive


@pytest.mark.parametrize(
    ("header", "unit", "expected_kw"),
    [
        ("timestamp,kW", None, 12.0),  # already kW
        ("timestamp,energy_kWh", None, 48.0),  # 12 kWh per 15 min = 48 kW
    ],
)
def test_generic_csv_units(tmp_path: Path, header: str, unit: str | None, expected_kw: float) -> None:
    idx = pd.date_range("2024-01-01", periods=8, freq="15min")
    f = tmp_path / "m.csv"
    f.write_text(header + "\n" + "".join(f"{t},12\n" for t in idx))
    [m] = read_meter(f, unit=unit)
    assert m.kw.iloc[0] == pytest.approx(expected_kw)


def test_utc_data_is_shifted_to_the_site_day(tmp_path: Path) -> None:
    """The seed ignored time zones: a 17:00 UTC peak is noon in New York (winter, UTC-5)."""
    idx = pd.date_range("2024-01-10", periods=48, freq="h")
    kw = np.where(idx.hour == 17, 100.0, 10.0)
    f = tmp_path / "utc.csv"
    f.write_text("datetime_utc,kW\n" + "".join(f"{t},{v}\n" for t, v in zip(idx, kw, strict=True)))
    [m] = read_meter(f, site_tz="America/New_York")
    assert m.kw.idxmax().hour == 12
    [naive] = read_meter(f)  # no site zone: stays on the UTC clock
    assert naive.kw.idxmax().hour == 17


def test_offsets_in_timestamps_are_honoured(tmp_path: Path) -> None:
    f = tmp_path / "off.csv"
    f.write_text("time,kW\n2024-06-01T12:00:00+02:00,5\n2024-06-01T13:00:00+02:00,6\n")
    [m] = read_meter(f, site_tz="UTC")
    assert list(m.kw.index.hour) == [10, 11]


def test_real_cambridge_file_loads_all_points(cambridge_csv: Path) -> None:
    meters = read_meter(cambridge_csv, site_tz="Europe/London", columns=["b1", "b21"])
    assert [m.name for m in meters] == ["b1", "b21"]
    assert all(m.unit_in == "kWh" for m in meters)  # hourly kWh = mean kW
    assert meters[1].kw.size == 17520 and meters[1].kw.max() == pytest.approx(1131.0)


def test_real_doe_and_citylearn_files_load(doe_csv: Path, citylearn_csv: Path) -> None:
    doe = read_meter(doe_csv)
    assert len(doe) == 16 and {"MediumOffice", "MidriseApartment"} <= {m.name for m in doe}
    homes = read_meter(citylearn_csv)
    assert len(homes) == 17
    first = homes[0].kw.index
    assert first[1] == pd.Timestamp("2016-08-01 00:00")  # rebuilt from the documented start
    raw = pd.read_csv(citylearn_csv, usecols=["day_type"])["day_type"].to_numpy()
    ordinary = raw <= 7  # 8 = holiday
    assert (first.day_of_week.to_numpy()[ordinary] + 1 == raw[ordinary]).mean() > 0.99  # 1 = Monday


def test_folder_of_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.csv").write_text("timestamp,kW\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n")
    assert [m.name for m in read_meters(tmp_path)] == ["kW", "kW"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("a,b\n1,2\n", "no timestamp column"),
        ("timestamp,kW\n2024-01-01,x\n", "no numeric values"),
        ("timestamp,kW\nyesterday,1\n", "cannot parse timestamps"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: str | None, message: str) -> None:
    f = tmp_path / "bad.csv"
    if content is not None:
        f.write_text(content)
    with pytest.raises(PlanningError, match=message):
        read_meter(f)
