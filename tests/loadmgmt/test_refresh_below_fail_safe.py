"""A live limit below the fail-safe that is due for its refresh is refreshed with the decreases.

Why: if that refresh lands after the profile's validTo, the charger rises to its fail-safe, while the same round's
increases to other connectors were sized with it at its live limit. Sent with the decreases, it is acknowledged
before any increase (seen at 600x: a 0 A connector refreshed late drew its fail-safe beside fresh increases).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from evsite.clock import ManualClock
from planning.allocation.policies import allocate
from tests.loadmgmt.helpers import load_manager, site_config

NOW = datetime(2026, 3, 2, 8, tzinfo=UTC)


def _sends(tmp_path: Path, expires_in_s: float) -> tuple[list[tuple[int, float]], list[tuple[int, float]], float]:
    lm, store = load_manager(site_config(tmp_path, "building_peak_kw = 10\nprofile_validity_s = 300"), ManualClock(NOW))
    lm.csms = SimpleNamespace(connected={"CP1"}, capabilities=lambda cp: None, clock_estimate=lambda cp: None)
    lm.chargers["CP1"] = lm._control("CP1")
    idle, car = lm._track("CP1", 1), lm._track("CP1", 2)
    assert idle is not None and car is not None
    car.tx_id, car.tx_start = 1, NOW - timedelta(hours=1)
    expiry = NOW + timedelta(seconds=expires_in_s)
    for t, amps in ((idle, 0.0), (car, 6.0)):
        t.online = True
        t.set_limit(amps, NOW - timedelta(seconds=100), expiry, "earlier round")
    snap, _building, stale = lm.snapshot(NOW)
    alloc = allocate(snap, lm.config.site.policy)
    decreases, rest = lm._plan_sends(snap, alloc.limit_a, alloc.reasons, NOW, stale)
    store.close()
    pick = lambda sends: [(t.spec.connector_id, amps) for t, amps, _ in sends]  # noqa: E731
    return pick(decreases), pick(rest), lm.fail_safe_a


def test_a_due_refresh_below_the_fail_safe_goes_with_the_decreases(tmp_path: Path) -> None:
    decreases, rest, fail_safe = _sends(tmp_path, 100.0)  # due: within half the validity of its expiry
    assert fail_safe > 6.0
    assert decreases == [(1, 0.0)]  # the idle connector's 0 A, acknowledged before ...
    assert [c for c, _ in rest] == [2] and rest[0][1] > 6.0  # ... the car's increase is sent


def test_a_refresh_not_yet_due_is_not_sent(tmp_path: Path) -> None:
    decreases, rest, _ = _sends(tmp_path, 250.0)
    assert decreases == []
    assert [c for c, _ in rest] == [2]  # only the increase: the idle connector's 0 A holds
