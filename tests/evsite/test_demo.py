"""The demo runs the real components end to end; these tests hold it to what it prints."""

from pathlib import Path

import numpy as np

from evsite.cli.demo_run import ev_over_limit_kw, run_demo
from evsite.config import Config


def _profile(limits_w: list[int]) -> dict:
    return {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Recurring",
        "recurrencyKind": "Daily",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 3600 * i, "limit": w} for i, w in enumerate(limits_w)],
        },
    }


def test_over_limit_allows_for_meter_lag_only():
    profile = _profile([20_000] + [10_000] * 23)
    # 15 kW seen 2 minutes into hour 1: within the lag after the drop from 20 kW, so not an excess.
    assert ev_over_limit_kw([(3720.0, 50.0, 15.0)], profile, lag_s=300) == 0.0
    # The same power 10 minutes in is 5 kW above the limit.
    assert np.isclose(ev_over_limit_kw([(4200.0, 50.0, 15.0)], profile, lag_s=300), 5.0)


async def test_demo_plans_serves_simulates_and_keeps_the_limit(tmp_path: Path):
    report = await run_demo(Config(), tmp_path, chargers=3, connectors=2, hours=3.0, speed=3600.0, seed=1)
    # Live load management: a fail-safe per charger and live limits per connector, all accepted.
    assert report.profiles_sent >= 3 + 6 and report.profiles_accepted == report.profiles_sent
    truth = report.ground_truth
    assert truth["violations"] == 0 and truth["peak_kw"] <= truth["limit_kw"], truth
    assert truth["sessions"] > 0 and 0 < truth["energy_delivered_kwh"] <= truth["energy_requested_kwh"]
    assert report.transactions > 0
    assert report.energy_kwh > 0
    assert report.meter_values > 0
    assert report.chargers_with_lm >= report.chargers_without_lm > 0
    assert report.ev_peak_over_limit_kw <= 0.5
    assert len(report.hours) >= 2
    assert (tmp_path / "plan" / "plan.json").is_file()
    assert (tmp_path / "demo.db").is_file()
