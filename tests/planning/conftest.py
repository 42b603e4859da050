"""Shared helpers for the planning tests: real-data paths and small generated meter files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def cambridge_csv(shared_data: Path) -> Path:
    return shared_data / "buildings" / "cambridge" / "cambridge_electricity_hourly_kwh_2018_2019.csv"


@pytest.fixture(scope="session")
def doe_csv(shared_data: Path) -> Path:
    return shared_data / "buildings" / "doe-reference" / "crb_electric_kw_Baltimore.csv"


@pytest.fixture(scope="session")
def citylearn_csv(shared_data: Path) -> Path:
    return shared_data / "buildings" / "citylearn-residential" / "non_shiftable_load_kwh_17_homes.csv"


def office_like(days: int = 60, start: str = "2024-01-01", freq: str = "h", seed: int = 0) -> pd.Series:
    """A generated office-like kW series: 8-18 h weekday plateau, low nights and weekends, mild noise."""
    per_day = {"h": 24, "15min": 96}[freq]
    idx = pd.date_range(start, periods=days * per_day, freq=freq)
    rng = np.random.default_rng(seed)
    hour = idx.hour + idx.minute / 60
    weekday = idx.day_of_week < 5
    kw = 20 + np.where(weekday & (hour >= 8) & (hour < 18), 60.0, 0.0) + rng.normal(0, 1.5, idx.size)
    return pd.Series(kw, index=idx)
