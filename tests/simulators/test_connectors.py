"""The vectorised connector step: min(EV acceptance, limit, rating), pauses, the charge-point-wide cap."""

from __future__ import annotations

import numpy as np
import pytest

from evsite.ev_fleet import FleetStepper
from simulators.connectors import (
    AVAILABLE,
    CHARGING,
    PREPARING,
    SUSPENDED_EV,
    SUSPENDED_EVSE,
    ConnectorArrays,
    step,
)
from tests.simulators.helpers import small_fleet


def arrays(limits_a: list[float], group: list[int] | None = None, phases: int = 3) -> ConnectorArrays:
    n = len(limits_a)
    a = ConnectorArrays.build([230.0] * n, [phases] * n, [32.0] * n, group or list(range(n)))
    a.limit_w = np.asarray(limits_a) * 230.0 * phases
    a.ev_present[:] = True
    a.charging_enabled[:] = True
    a.ev_id[:] = np.arange(n)
    return a


@pytest.mark.parametrize(
    ("limit_a", "ev_kw", "soc", "expected_w", "status"),
    [
        (32.0, 11.0, 0.2, 11000.0, CHARGING),  # the EV is the bottleneck
        (10.0, 11.0, 0.2, 6900.0, CHARGING),  # the limit is: 10 A x 230 V x 3
        (6.0, 11.0, 0.2, 4140.0, CHARGING),  # exactly the EV minimum still charges
        (5.9, 11.0, 0.2, 0.0, SUSPENDED_EVSE),  # below 6 A: paused by the EVSE
        (0.0, 11.0, 0.2, 0.0, SUSPENDED_EVSE),
        (32.0, 11.0, 0.95, 0.0, SUSPENDED_EV),  # at its demanded SoC the EV takes nothing
        (64.0, 50.0, 0.2, 22080.0, CHARGING),  # a DC-capable car still only gets the connector rating
    ],
)
def test_power_is_min_of_ev_limit_rating(limit_a, ev_kw, soc, expected_w, status) -> None:
    a = arrays([limit_a])
    fleet = small_fleet(1, arrival_s=0.0, p_kw=ev_kw, soc=soc, soc_target=0.9)
    codes = step(a, FleetStepper(fleet), 0.0, 10.0)
    assert a.power_w[0] == pytest.approx(expected_w)
    assert codes[0] == status
    assert a.energy_wh[0] == pytest.approx(expected_w * 10 / 3600)


def test_charge_point_cap_scales_its_connectors_together() -> None:
    a = arrays([32.0, 32.0, 32.0], group=[0, 0, 1])
    fleet = small_fleet(3, arrival_s=0.0, p_kw=11.0)
    step(a, FleetStepper(fleet), 0.0, 10.0, group_cap_w=np.array([11000.0, 1e9]))
    assert a.power_w.tolist() == pytest.approx([5500.0, 5500.0, 11000.0])


def test_cap_squeezing_below_ev_minimum_pauses_instead() -> None:
    a = arrays([32.0, 32.0], group=[0, 0])
    fleet = small_fleet(2, arrival_s=0.0, p_kw=11.0)
    codes = step(a, FleetStepper(fleet), 0.0, 10.0, group_cap_w=np.array([6000.0]))
    assert a.power_w.tolist() == [0.0, 0.0]  # 3 kW each is below 6 A x 230 V x 3 = 4.14 kW
    assert codes.tolist() == [SUSPENDED_EVSE, SUSPENDED_EVSE]


def test_presence_without_transaction_is_preparing() -> None:
    a = arrays([32.0, 32.0])
    a.charging_enabled[:] = False
    a.ev_present[1] = False
    a.ev_id[1] = -1
    codes = step(a, FleetStepper(small_fleet(2, arrival_s=0.0)), 0.0, 10.0)
    assert codes.tolist() == [PREPARING, AVAILABLE]
    assert a.power_w.tolist() == [0.0, 0.0]


def test_a_car_that_does_not_resume_stays_suspended_after_a_pause() -> None:
    a = arrays([16.0, 16.0])
    fleet = small_fleet(2, arrival_s=0.0, p_kw=11.0, soc=0.2, soc_target=0.9)
    stepper = FleetStepper(fleet)
    no_resume = np.array([True, False])
    step(a, stepper, 0.0, 10.0, None, no_resume)
    assert (a.power_w > 0).all()  # both charge before any pause
    a.limit_w[:] = 0.0
    codes = step(a, stepper, 10.0, 10.0, None, no_resume)
    assert list(codes) == [SUSPENDED_EVSE, SUSPENDED_EVSE]
    a.limit_w[:] = 16.0 * 230.0 * 3
    codes = step(a, stepper, 20.0, 10.0, None, no_resume)
    # The quirky car takes nothing although the limit is back; the other resumes.
    assert list(codes) == [SUSPENDED_EV, CHARGING]
    assert a.power_w[0] == 0.0 and a.power_w[1] > 0
