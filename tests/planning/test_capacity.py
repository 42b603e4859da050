"""NEC 220.87 / 625.42 arithmetic, checked by hand on small examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from planning.capacity import MaxDemand, Service, alm_headroom, check_within_rating, max_demand, nec_capacity
from planning.errors import PlanningError

# 400 A, 208 V, three-phase: 400 * 208 * sqrt(3) = 144.107 kW. NEC 2017: EVSE counted at nameplate.
SVC = Service(rating_a=400, voltage_v=208, phases=3, evse_rating_a=32, evse_voltage_v=208, nec_edition=2017)


def test_service_and_evse_ratings_by_hand() -> None:
    assert SVC.rating_kw == pytest.approx(144.1066, abs=1e-3)
    assert SVC.evse_kw == pytest.approx(6.656)  # 32 A x 208 V
    assert Service(rating_a=200, voltage_v=240, phases=1).rating_kw == pytest.approx(48.0)


@pytest.mark.parametrize(
    ("max_kw", "existing_evse", "expected"),
    [
        # spare = 144.107 - 1.25*80 = 44.107 kW; each EVSE counts 1.25*6.656 = 8.32 kW -> 5.30 -> 5
        (80.0, 0, 5),
        (80.0, 2, 3),  # existing EVSEs at nameplate come off the count
        (80.0, 9, 0),  # never negative
        (115.0, 0, 0),  # 1.25*115 = 143.75: 0.36 kW left, not one EVSE
        (120.0, 0, 0),  # existing load alone exceeds the rating
        (0.0, 0, 17),  # 144.107 / 8.32 = 17.3
    ],
)
def test_chargers_without_load_management(max_kw: float, existing_evse: int, expected: int) -> None:
    svc = Service(**{**SVC.__dict__, "existing_evse_count": existing_evse})
    nec = nec_capacity(max_kw, svc)
    assert nec.existing_load_kw == pytest.approx(1.25 * max_kw)
    assert nec.chargers_without_lm == expected
    assert nec.existing_over_rating == (1.25 * max_kw > svc.rating_kw)


def test_evse_rating_in_kw_wins() -> None:
    svc = Service(rating_a=400, voltage_v=208, phases=3, evse_rating_kw=11.0)  # 11 > 7.2: nameplate in any edition
    # (144.107 - 100) / (1.25*11) = 3.2 -> 3
    assert nec_capacity(80.0, svc).chargers_without_lm == 3


def test_alm_headroom_is_continuous_limit_minus_load() -> None:
    load = np.array([50.0] * 12 + [120.0] * 12)
    h = alm_headroom(load, SVC)
    assert h[0] == pytest.approx(0.8 * 144.1066 - 50, abs=1e-3)
    assert h[-1] < 0  # 120 kW exceeds the 115.3 kW continuous limit: no EV power then
    # Wherever EV power is allowed, 1.25 * (load + EV) stays within the rating (equality at the limit).
    ev = np.clip(h, 0, None)
    assert np.allclose(1.25 * (load + ev)[ev > 0], SVC.rating_kw)


def test_max_demand_year_and_30_day_bases() -> None:
    year = pd.Series(np.ones(24 * 366), index=pd.date_range("2023-01-01", periods=24 * 366, freq="h"))
    year.iloc[1000] = 9.0
    md = max_demand(year)
    assert md.kw == 9.0 and md.basis.startswith("1-year")
    # 5-minute data over 40 days: the demand is the highest 15-minute average, not the highest sample.
    idx = pd.date_range("2024-01-01", periods=12 * 24 * 40, freq="5min")
    fine = pd.Series(np.ones(idx.size), index=idx)
    fine.iloc[3] = 10.0  # one 5-minute spike inside the 00:00-00:15 slot -> (1+1+10)/3 = 4
    md = max_demand(fine)
    assert md.basis.startswith("30-day") and md.kw == pytest.approx(4.0)


def test_too_little_data_for_nec() -> None:
    s = pd.Series(np.ones(48), index=pd.date_range("2024-01-01", periods=48, freq="h"))
    with pytest.raises(PlanningError, match=r"NEC 220\.87 needs a year"):
        max_demand(s)


def test_floor_is_not_fooled_by_rounding() -> None:
    svc = Service(rating_a=100, voltage_v=100, phases=1, evse_rating_kw=1.0 / 1.25, nec_edition=2017)
    # rating 10 kW, max demand 0 -> 10 / 1.0 = exactly 10 chargers
    assert nec_capacity(0.0, svc).chargers_without_lm == math.floor(10.0)


@pytest.mark.parametrize(
    ("service", "max_kw", "expected", "by_hand"),
    [
        # 400 A 208 V 3-phase, NEC 2023: EVSE 6.656 kW counts at 7.2 kW (220.57), x 1.25 continuous = 9.0 kW.
        # (144.107 - 1.25 * 80) / 9.0 = 4.90 -> 4
        (Service(rating_a=400, voltage_v=208, phases=3), 80.0, 4, (144.1066 - 100.0) / 9.0),
        # 200 A 240 V 1-phase = 48 kVA, 11.52 kW EVSE (48 A x 240 V) > 7.2: nameplate. 100%-rated equipment
        # (factor 1.0): EVSE at 100%, but 220.87 still takes the max demand at 125%: (48 - 1.25*20) / 11.52 = 1.99
        (
            Service(
                rating_a=200, voltage_v=240, phases=1, evse_rating_a=48, evse_voltage_v=240, continuous_load_factor=1.0
            ),
            20.0,
            1,
            (48.0 - 25.0) / 11.52,
        ),
        # 800 A 480 V 3-phase = 665.1 kVA at pf 0.9: 1.25 * 300 kW / 0.9 = 416.67 kVA; EVSE 7.2 kW x 1.25 = 9.0:
        # (665.108 - 416.667) / 9.0 = 27.6 -> 27
        (Service(rating_a=800, voltage_v=480, phases=3, power_factor=0.9), 300.0, 27, (665.108 - 416.667) / 9.0),
    ],
)
def test_nec_figures_by_hand_for_three_services(service: Service, max_kw: float, expected: int, by_hand: float) -> None:
    nec = nec_capacity(max_kw, service)
    assert nec.chargers_without_lm == expected == math.floor(by_hand)
    assert nec.existing_load_kw == pytest.approx(1.25 * max_kw / service.pf)  # 220.87: always 125%


def test_220_87_factor_is_separate_from_the_continuous_load_factor() -> None:
    """100%-rated equipment changes how EVSE count (625.42), never the 125% on the measured demand (220.87)."""
    std = nec_capacity(80.0, Service(rating_a=400, voltage_v=208, phases=3))
    full = nec_capacity(80.0, Service(rating_a=400, voltage_v=208, phases=3, continuous_load_factor=1.0))
    assert std.existing_load_kw == full.existing_load_kw == pytest.approx(100.0)
    assert std.evse_counted_kw == pytest.approx(9.0) and full.evse_counted_kw == pytest.approx(7.2)
    # NEC 2017: the 6.656 kW nameplate counts as it is; 2020 and later: at least 7.2 kW.
    assert nec_capacity(80.0, Service(rating_a=400, voltage_v=208, phases=3, nec_edition=2017)).evse_load_kw == (
        pytest.approx(6.656)
    )


def test_demand_above_the_rating_says_rating_or_unit() -> None:
    svc = Service(rating_a=400, voltage_v=208, phases=3)  # 144 kVA
    with pytest.raises(PlanningError, match=r"RATING is likely wrong.*rating_a"):
        check_within_rating(MaxDemand(180.0, "1-year", 365, "2024-07-01 15:00"), svc, "kW", "office")
    with pytest.raises(PlanningError, match=r"UNIT is likely wrong.*--unit W"):
        check_within_rating(MaxDemand(95_000.0, "1-year", 365, "2024-07-01 15:00"), svc, "kW", "office")
    check_within_rating(MaxDemand(140.0, "1-year", 365, "2024-07-01 15:00"), svc, "kW", "office")  # fits
