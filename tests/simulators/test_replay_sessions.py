"""Real ACN-Data sessions (Caltech, 2021-09-10) replayed through simulated chargers: every real arrival becomes
an Authorize/StartTransaction, every departure a StopTransaction, and the cars take energy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from evsite.clock import ManualClock
from evsite.ev_fleet import replay_sessions
from simulators.site import SimulatedSite, charger_specs
from tests.simulators.helpers import advance
from tests.simulators.recording_csms import RecordingCSMS
from tests.waiting import eventually

DAY = datetime(2021, 9, 10, 12, 0, tzinfo=UTC)  # 05:00 Pasadena: the morning arrivals are ahead
HOURS = 12.0


async def test_real_sessions_plug_in_and_leave(shared_data: Path) -> None:
    end = DAY.replace(hour=23, minute=59)
    fleet = replay_sessions(shared_data / "ev-sessions" / "acn_caltech_sessions.csv", start=DAY, end=end)
    arrive = int(np.sum(fleet.arrival_s <= HOURS * 3600))
    leave = int(np.sum(fleet.departure_s <= HOURS * 3600))
    assert arrive >= 15, "the chosen day should have real traffic"
    clock = ManualClock(start=DAY)
    async with RecordingCSMS(interval_s=3600) as csms:
        # More connectors than cars, so every real session finds a free one.
        site = SimulatedSite(csms.url, clock, charger_specs(len(fleet), 1), fleet, step_s=300.0)
        await site.start()
        try:
            assert await site.wait_online(10.0) == len(fleet)
            await advance(site, clock, HOURS * 3600, step_s=300.0)
            await eventually(lambda: not any(cp.pending for cp in site.chargers), what="outboxes to drain")
        finally:
            await site.stop()
        assert site.evs_turned_away == 0
        assert len(csms.rec.calls("StartTransaction")) == arrive
        assert len(csms.rec.calls("StopTransaction")) == leave
        assert site.arrays.energy_wh.sum() > 0
        done = fleet.departure_s <= HOURS * 3600
        assert np.all(fleet.soc[done] > fleet.soc_initial[done]), "every finished session took energy"
        assert csms.rec.errors == []
