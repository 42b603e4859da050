"""The simulated chargers' discharge (``evsite.discharge``): only a bidirectional charger takes a negative
limit, its car then feeds back, and the site's EV load goes negative."""

from __future__ import annotations

import numpy as np
import pytest

from evsite.clock import ManualClock
from evsite.discharge import CAPABILITY_KEY, declared, signed_rate
from evsite.ev_fleet import FleetStepper
from simulators.chargepoint import ChargerSpec, SimChargePoint
from simulators.connectors import CHARGING, SUSPENDED_EV, ConnectorArrays, step
from tests.simulators.helpers import small_fleet


def _one(limit_a: float, p_kw: float = 11.0, soc: float = 0.6) -> tuple[ConnectorArrays, FleetStepper]:
    a = ConnectorArrays.build([230.0], [3], [32.0], [0])
    a.limit_w = np.array([limit_a * 230.0 * 3])
    a.ev_present[:] = a.charging_enabled[:] = True
    a.ev_id[:] = 0
    return a, FleetStepper(small_fleet(1, arrival_s=0.0, p_kw=p_kw, soc=soc, soc_target=0.5))


@pytest.mark.parametrize(
    ("limit_a", "expected_w", "status"),
    [
        (-10.0, -6900.0, CHARGING),  # 10 A x 230 V x 3 fed back (OCPP 1.6 has no discharging status)
        (-32.0, -11000.0, CHARGING),  # the car's own discharge power is the bottleneck
        (-5.0, 0.0, SUSPENDED_EV),  # below the minimum current either way: nothing flows (the car is full)
    ],
)
def test_a_negative_limit_discharges_even_past_the_target(limit_a, expected_w, status) -> None:
    a, stepper = _one(limit_a)  # SoC 0.6 is above its 0.5 target: it would not charge, it may discharge
    soc0 = float(stepper.fleet.soc[0])
    codes = step(a, stepper, 0.0, 36.0)
    assert a.power_w[0] == pytest.approx(expected_w)
    assert codes[0] == status
    assert a.energy_wh[0] == 0.0  # the import register does not run backwards
    assert a.export_wh[0] == pytest.approx(-expected_w * 36.0 / 3600.0)  # the export register counts it
    assert (stepper.fleet.soc[0] < soc0) == (expected_w < 0)


def _charger(bidirectional: bool) -> SimChargePoint:
    from datetime import UTC, datetime

    arrays = ConnectorArrays.build([230.0], [3], [32.0], [0])
    spec = ChargerSpec("V2G" if bidirectional else "UNI", connectors=1, bidirectional=bidirectional)
    return SimChargePoint(spec, "ws://127.0.0.1:1", ManualClock(datetime(2026, 3, 2, 8, tzinfo=UTC)), arrays, 0)


def _profile(limit: float, unit: str = "W") -> dict:
    return {"chargingProfileId": 7101, "stackLevel": 2, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"startSchedule": "2026-03-01T08:00:00Z", "chargingRateUnit": unit,
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}  # fmt: skip


def test_only_a_bidirectional_charger_declares_and_accepts_discharge() -> None:
    uni, v2g = _charger(False), _charger(True)
    keys = {c.id: {k["key"]: k["value"] for k in c.on_get_configuration([CAPABILITY_KEY]).configuration_key}
            for c in (uni, v2g)}  # fmt: skip
    assert not declared(keys["UNI"]) and declared(keys["V2G"])
    assert uni.on_set_charging_profile(1, _profile(-6900.0)).status == "Rejected"
    assert uni.arrays.limit_w[0] == pytest.approx(32 * 230 * 3)  # nothing installed
    assert v2g.on_set_charging_profile(1, _profile(-6900.0)).status == "Accepted"
    assert v2g.arrays.limit_w[0] == pytest.approx(-6900.0)
    # a negative ChargePointMaxProfile is meaningless: rejected even by a bidirectional charger
    cap = _profile(-6900.0) | {"chargingProfileId": 7001, "chargingProfilePurpose": "ChargePointMaxProfile"}
    assert v2g.on_set_charging_profile(0, cap).status == "Rejected"


def test_signed_rates_round_towards_zero() -> None:
    assert signed_rate(-10.06, "A", 230.0, 3) == -10.0
    assert signed_rate(10.06, "A", 230.0, 3) == 10.0
    assert signed_rate(-10.0, "W", 230.0, 3) == -6900.0
    assert signed_rate(-1.001, "W", 230.0, 1) == -230.0
