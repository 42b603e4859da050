"""Tariffs: dated tiers (and the seed's date defect), acnportal and OpenEI URDB files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evsite.config import TariffConfig
from planning.errors import PlanningError
from planning.tariff import load_tariff_file, seed_tariff, tariff_from_config, tiered_tariff


@pytest.mark.parametrize(
    ("day", "customer", "noon", "night"),
    [
        ("2019-01-07", "business", 18.62, 1.38),  # the seed parsed 01/07 as 7 January: here it is tier 1
        ("2019-06-30", "business", 18.62, 1.38),
        ("2019-07-01", "business", 37.82, 1.38),  # 1 July: summer tier
        ("2019-09-30", "residential", 25.5, 1.8),
        ("2019-10-01", "residential", 9.44, 1.8),
        ("2019-12-31", "residential", 9.44, 1.8),
    ],
)
def test_seed_tiers_by_date(day: str, customer: str, noon: float, night: float) -> None:
    p = seed_tariff(customer).hourly_prices(pd.DatetimeIndex([day]))[0]
    assert p[12] == noon and p[3] == night and p[7] == night and p[8] == noon


@pytest.mark.parametrize("bad", ["01/07/2022", "07/01", "13-01", "2-30"])
def test_ambiguous_or_impossible_tier_dates_are_rejected(bad: str) -> None:
    with pytest.raises(PlanningError, match="tier_starts"):
        tiered_tariff(["01-01", bad], [[1.0] * 24, [2.0] * 24])


def test_config_tiers_and_wrong_length() -> None:
    cfg = TariffConfig(tier_starts=["01-01", "06-01"], business=[[1.0] * 24, [2.0] * 24])
    t = tariff_from_config(cfg)
    assert t.hourly_prices(pd.DatetimeIndex(["2020-05-31", "2020-06-01"]))[:, 0].tolist() == [1.0, 2.0]
    with pytest.raises(PlanningError, match="expected 24"):
        tariff_from_config(TariffConfig(tier_starts=["01-01"], business=[[1.0] * 23]))


def test_acnportal_sce_tou_ev4(shared_data: Path) -> None:
    t = load_tariff_file(shared_data / "tariffs" / "acnportal" / "sce_tou_ev_4_march_2019.json")
    p = t.hourly_prices(pd.DatetimeIndex(["2019-07-03", "2019-07-06", "2019-01-09"]))  # Wed, Sat, Wed
    assert p[0, 13] == pytest.approx(26.668)  # summer weekday 12-18 h, $0.26668
    assert p[0, 3] == pytest.approx(5.623) and p[0, 23] == pytest.approx(5.623)
    assert np.allclose(p[1], 5.623)  # summer weekend flat
    assert p[2, 13] == pytest.approx(8.69)  # winter weekday


@pytest.mark.parametrize(
    "name",
    [
        "u14328_Commercial_B-19_TOU_gridlevelSecondary_revised.json",
        "u14328_Commercial_A-10_TOU_gridlevelSecondary_revised.json",
        "u17609_Commercial_TOU-8_TOU_revised.json",
    ],
)
def test_openei_urdb_files_price_every_day(shared_data: Path, name: str) -> None:
    t = load_tariff_file(shared_data / "tariffs" / "openei_urdb" / name)
    p = t.hourly_prices(pd.date_range("2019-01-01", "2019-12-31"))
    assert p.shape == (365, 24) and np.all(p > 0) and np.all(p < 100)


def test_urdb_b19_summer_peak(shared_data: Path) -> None:
    t = load_tariff_file(
        shared_data / "tariffs" / "openei_urdb" / "u14328_Commercial_B-19_TOU_gridlevelSecondary_revised.json"
    )
    p = t.hourly_prices(pd.DatetimeIndex(["2020-07-01"]))[0]  # a Wednesday in summer
    assert p[17] > p[3]  # 16-21 h peak above night


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "not a readable JSON"), ('{"a": 1}', "neither an acnportal"), ("[]", "no URDB record")],
)
def test_bad_tariff_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "t.json"
    f.write_text(content)
    with pytest.raises(PlanningError, match=message):
        load_tariff_file(f)
