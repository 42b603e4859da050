"""One real-socket test: aggregator setpoints through the real ``CentralSystem`` to OCPP 1.6 charge points."""

from __future__ import annotations

import numpy as np

from controller.aggregator.dispatch import ProfileDispatcher, connectors_from_config
from controller.csms import CentralSystem
from controller.store import Store
from evsite.bus import EventBus
from evsite.config import parse_config
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
        # regulation up, as far as possible: the unidirectional cars stop, the bidirectional one feeds back
        setpoints = np.array([0.0, 0.0, -refs[2].power_kw(32.0)])
        reasons = ["regulation_switch", "regulation_switch", "regulation_switch; discharge"]
        async with charge_point(csms.url, "UNI") as uni, charge_point(csms.url, "V2G") as v2g:
            result = await ProfileDispatcher(csms.send, refs).apply_setpoints(np.arange(3), setpoints, reasons)
            assert result.accepted == 3 and result.refused == 0 and not result.failed
            got_uni = await uni.wait_for("SetChargingProfile", count=2)
            got_v2g = await v2g.wait_for("SetChargingProfile")

        def limit(kw: dict) -> float:
            return kw["cs_charging_profiles"]["charging_schedule"]["charging_schedule_period"][0]["limit"]

        assert sorted(limit(kw) for kw in got_uni) == [0.0, 0.0]  # unidirectional: idle, never negative
        assert limit(got_v2g[0]) == -32.0  # bidirectional: discharge at full current
        await csms.flush()
        stored = {row.reason for cp in ("UNI", "V2G") for row in csms.store.charging_profiles(cp)}
        assert stored == {"regulation_switch", "regulation_switch; discharge"}
    finally:
        await csms.stop()
        store.close()
