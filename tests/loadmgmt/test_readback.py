"""GetCompositeSchedule readback: a composite above every limit that may be in force is flagged; one that shows the
limit a round replaced while the charger answered, or the fail-safe once the live limit expired, is not. The
answer's scheduleStart is a sample of the charger's clock (it is not queued behind buffered messages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from controller.loadmgmt import profiles as prof
from evsite.clock import ManualClock
from tests.loadmgmt.helpers import load_manager, site_config

NOW = datetime(2026, 3, 2, 8, tzinfo=UTC)
SHAPE = prof.Shape("A", 1, 230.0, 3)


def _answer(limit_a: float, schedule_start: str | None = None) -> SimpleNamespace:
    period = [{"startPeriod": 0, "limit": limit_a}]
    return SimpleNamespace(
        status="Accepted",
        charging_schedule={"chargingRateUnit": "A", "chargingSchedulePeriod": period},
        schedule_start=schedule_start,
    )


async def _read_back(
    tmp_path: Path, set_a: float, lowered_to: float | None, composite_a: float, valid_until: datetime | None = None
) -> set[str]:
    lm, store = load_manager(site_config(tmp_path, "building_peak_kw = 10"), ManualClock(NOW))
    t = lm._track("CP1", 1)
    assert t is not None
    t.assumed_a, t.valid_until = set_a, valid_until

    async def send(cp_id: str, request, **kw):
        if lowered_to is not None:
            t.assumed_a = lowered_to  # a decrease acknowledged while the charger was answering
        return _answer(composite_a)

    lm.csms.send = send  # type: ignore[method-assign]
    await lm._read_back(t, SHAPE)
    store.close()
    return t.flags


async def test_a_composite_above_the_limit_is_flagged(tmp_path: Path) -> None:
    assert "readback mismatch" in await _read_back(tmp_path, 16.0, None, 24.0)
    assert "readback mismatch" not in await _read_back(tmp_path, 16.0, None, 16.0)
    assert "readback mismatch" not in await _read_back(tmp_path, 16.0, None, 10.0)  # a ceiling may hold it lower


async def test_the_limit_replaced_during_the_readback_is_not_a_mismatch(tmp_path: Path) -> None:
    assert "readback mismatch" not in await _read_back(tmp_path, 16.0, 8.0, 16.0)
    assert "readback mismatch" in await _read_back(tmp_path, 16.0, 8.0, 20.0)


async def test_the_fail_safe_after_the_live_limit_expired_is_not_a_mismatch(tmp_path: Path) -> None:
    lm, store = load_manager(site_config(tmp_path, "building_peak_kw = 10"), ManualClock(NOW))
    fail_safe = lm.fail_safe_a
    store.close()
    assert fail_safe > 1.0
    expired, live = NOW - timedelta(seconds=1), NOW + timedelta(seconds=60)
    # 0 A (no car) whose live profile has expired: the charger is on its fail-safe, as the controller counts it
    assert "readback mismatch" not in await _read_back(tmp_path, 0.0, None, fail_safe, expired)
    # ... but not while the live profile should still hold, and never above the fail-safe
    assert "readback mismatch" in await _read_back(tmp_path, 0.0, None, fail_safe, live)
    assert "readback mismatch" in await _read_back(tmp_path, 0.0, None, fail_safe + 1.0, expired)


async def test_the_answers_schedule_start_is_a_tight_sample_of_the_chargers_clock(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    lm, store = load_manager(site_config(tmp_path, "building_peak_kw = 10\nprofile_validity_s = 300"), clock)
    # The charger's clock is exact, but everything it sent waited 15 minutes in its queue (a backlog after an
    # outage, or a loaded simulation at 600x): the bound from its messages is 900 s behind the truth ...
    for k in range(20):
        received = NOW - timedelta(seconds=30 * (20 - k))
        lm.csms.clock_sample("CP1", received - timedelta(seconds=900), received)
    est = lm.csms.clock_estimate("CP1")
    assert est is not None and est.offset_s < -899.0
    # ... so the live limit written with it would already be past at the charger when it arrives.
    validity = lm.config.site.profile_validity_s
    expiry = prof.common_expiry(NOW, validity)
    written = prof.live_profile(SHAPE, 1, 0.0, NOW, (expiry - NOW).total_seconds(), 1, est)["validTo"]
    assert datetime.fromisoformat(written.replace("Z", "+00:00")) < NOW
    t = lm._track("CP1", 1)
    assert t is not None
    t.assumed_a = 0.0

    async def send(cp_id: str, request, **kw):
        await clock.advance(0.2)  # the round trip; the charger answers at once, in its own (exact) clock
        return _answer(0.0, (NOW + timedelta(seconds=0.1)).isoformat())

    lm.csms.send = send  # type: ignore[method-assign]
    await lm._read_back(t, SHAPE)
    est = lm.csms.clock_estimate("CP1")
    store.close()
    # The answer bounds the offset within its round trip: the next live limit holds at the charger until its expiry
    # less the margin (1 s resolution) and the round trip.
    assert est is not None and -0.2 - 1e-6 <= est.offset_s <= 0.0
    written = prof.live_profile(SHAPE, 1, 0.0, NOW, (expiry - NOW).total_seconds(), 1, est)["validTo"]
    assert datetime.fromisoformat(written.replace("Z", "+00:00")) >= expiry - timedelta(seconds=2)
