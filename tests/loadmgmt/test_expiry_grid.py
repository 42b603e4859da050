"""Live limits share one expiry grid, so a controller that dies leaves no mix of expired and live limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np

from controller.loadmgmt.clockwork import Clockwork
from controller.loadmgmt.profiles import common_expiry, grid_start
from evsite.clock import ManualClock


def test_limits_sent_within_one_half_validity_expire_together() -> None:
    validity = 120.0
    t0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
    sends = [t0 + timedelta(seconds=s) for s in np.arange(0.0, 600.0, 7.3)]
    for now in sends:
        expiry = common_expiry(now, validity)
        # never longer than the documented tolerance, never shorter than half of it
        assert now + timedelta(seconds=validity / 2) < expiry <= now + timedelta(seconds=validity)
        assert grid_start(now, validity) <= now < grid_start(now, validity) + timedelta(seconds=validity / 2)
    # all the limits sent in one half-validity interval share their expiry
    by_interval: dict[datetime, set[datetime]] = {}
    for now in sends:
        by_interval.setdefault(grid_start(now, validity), set()).add(common_expiry(now, validity))
    assert all(len(e) == 1 for e in by_interval.values()) and len(by_interval) == 10


def test_the_refresh_fires_on_the_expiry_grid() -> None:
    """The clockwork's refresh fires at each grid boundary, i.e. half a validity before every expiry."""

    site = SimpleNamespace(timezone="Europe/London", profile_validity_s=300.0, replan_cron="0 3 * * *")
    manager = SimpleNamespace(config=SimpleNamespace(site=site), tiers=None)
    clock = ManualClock(datetime(2026, 3, 2, 8, 1, 17, tzinfo=UTC))
    cw = Clockwork(manager, clock)
    fire = cw.refresh.get_next_fire_time(None, clock.now())
    assert fire == datetime(2026, 3, 2, 8, 2, 30, tzinfo=UTC)
    sent_before = clock.now()
    assert common_expiry(sent_before, 300.0) - fire == timedelta(seconds=150)
