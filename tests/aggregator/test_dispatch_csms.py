"""One real-socket test: aggregator decisions through the real ``CentralSystem`` to OCPP 1.6 charge points."""

from __future__ import annotations

from controller.aggregator.core import RegulationController
from controller.aggregator.dispatch import ProfileDispatcher, can_discharge_mask, connectors_from_config
from controller.csms import CentralSystem
from controller.store import Store
from evsite.bus import EventBus
from evsite.config import parse_config
from evsite.ev_fleet import seed_fleet
from planning.ssm_estimate import estimate_model
from tests.controller.ocpp_client import charge_point


async def test_regulation_profiles_reach_real_charge_points(tmp_path, manual_clock) -> None:
    config = parse_config({
        "server": {"host": "127.0.0.1", "port": 0, "call_timeout_s": 2},
        "store": {"url": f"sqlite:///{tmp_path / 'evsite.db'}"},
        "chargers": [{"id": "UNI", "connectors": 2, "max_current_a": 16},
                     {"id": "V2G", "connectors": 1, "max_current_a": 32, "bidirectional": True}],
    })  # fmt: skip
    store = Store.open(config.store.url)
    csms = CentralSystem(config, store, manual_clock, EventBus())
    await csms.start()
    try:
        refs = connectors_from_config(config.chargers)
        f = seed_fleet(len(refs), 0)
        f.arrival_s[:] = 0.0
        f.departure_s[:] = 8 * 3600.0
        f.soc[:] = 0.7
        f.soc_target[:] = 0.5
        model = estimate_model(seed_fleet(200, 1), duration_s=100)
        ctrl = RegulationController(f, model, can_discharge=can_discharge_mask(refs))
        decision = ctrl.decide(0.0, target_kw=1e6)  # regulation up, as far as possible
        async with charge_point(csms.url, "UNI") as uni, charge_point(csms.url, "V2G") as v2g:
            result = await ProfileDispatcher(csms.send, refs).apply(
                decision.changed, decision.new_mode, decision.reason
            )
            assert result.accepted == 3 and result.refused == 0 and not result.failed
            got_uni = await uni.wait_for("SetChargingProfile", count=2)
            got_v2g = await v2g.wait_for("SetChargingProfile")

        def limit(kw: dict) -> float:
            return kw["cs_charging_profiles"]["charging_schedule"]["charging_schedule_period"][0]["limit"]

        assert sorted(limit(kw) for kw in got_uni) == [0.0, 0.0]  # unidirectional: idle, never negative
        assert limit(got_v2g[0]) == -32.0  # bidirectional: discharge at full current
        await csms.flush()
        reasons = {row.reason for cp in ("UNI", "V2G") for row in csms.store.charging_profiles(cp)}
        assert reasons == {"regulation_up_stop_charge", "regulation_up_discharge"}
    finally:
        await csms.stop()
        store.close()
