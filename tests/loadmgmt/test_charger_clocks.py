"""Chargers whose clock is off by ten minutes, against the real central system and load management over real
WebSockets: the live limit's ``validTo`` is written in the charger's clock, so the simulated charger (which
evaluates its profiles in its own clock) falls to its fail-safe within ``profile_validity_s`` of the
controller's last refresh when the controller stops, and one running ahead does not lose its limit early.
Time is the simulated site's (a manual clock): the instant of the fall is measured by the simulator. After a restart,
the messages a charger buffered while the controller was down (sent first, stamped long ago) do not pull its clock
estimate down, so the live limits sent meanwhile hold at the charger as long as the controller counts them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.csms import CentralSystem
from controller.loadmgmt.manager import LoadManager
from controller.loadmgmt.restore import last_accepted
from controller.store import Store
from evsite.bus import EventBus
from evsite.clock import ManualClock
from evsite.config import parse_config_text
from simulators.site import SimulatedSite, charger_specs
from tests.simulators.helpers import small_fleet
from tests.waiting import eventually

VALIDITY_S = 120.0
STEP_S = 5.0
W_PER_A = 230.0 * 3  # the simulated charger's 230 V x 3 phases


def _config(tmp_path: Path):
    return parse_config_text(f"""
[server]
host = "127.0.0.1"
port = 0
call_timeout_s = 5
[store]
url = "sqlite:///{tmp_path / "clocks.db"}"
[service]
rating_a = 100
voltage_v = 400
[site]
building_peak_kw = 40
reserve_kw = 0
profile_validity_s = {VALIDITY_S}
period_s = 30
readback = false
[[chargers]]
id = "SIM0001"
connectors = 2
max_current_a = 32
[[id_tags]]
id_tag = "SIM-TAG"
""")


async def _step(site: SimulatedSite, clock: ManualClock) -> None:
    await clock.advance(STEP_S)
    site.step()
    for _ in range(6):  # let the messages and the manager's calls of this step happen
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("offset_s", [-600.0, 600.0], ids=["10-min-behind", "10-min-ahead"])
async def test_the_live_limit_expires_on_time_by_the_chargers_own_clock(tmp_path: Path, offset_s: float) -> None:
    cfg = _config(tmp_path)
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    store = Store.open(cfg.store.url)
    bus = EventBus()
    csms = CentralSystem(cfg, store, clock, bus)
    await csms.start()
    manager = LoadManager(cfg, csms, bus, clock)
    lm_task = asyncio.create_task(manager.run())
    site = SimulatedSite(csms.url, clock, charger_specs(1, 2, clock_offset_s=offset_s),
                         small_fleet(1, arrival_s=20.0), backoff_base_s=300.0)  # fmt: skip
    cp = site.chargers[0]
    try:
        await site.start()
        assert await site.wait_online(10.0) == 1
        for _ in range(8):
            await _step(site, clock)
        conn = next(iter(cp.tx))
        track = manager.tracks[("SIM0001", conn)]
        fail_safe_w = manager.fail_safe_a * W_PER_A
        await eventually(lambda: track.assumed_a is not None and track.assumed_a > manager.fail_safe_a + 1.0,
                         what="a live limit above the fail-safe")  # fmt: skip
        est = csms.clock_estimate("SIM0001")
        assert est is not None and abs(est.offset_s - offset_s) < 1.0
        # Controller running: five minutes of refreshes, the charger applies the live limit all along.
        for _ in range(int(300 / STEP_S)):
            await _step(site, clock)
            live_w = cp.arrays.limit_w[cp.idx(conn)]
            assert live_w > fail_safe_w + W_PER_A, f"fell to the fail-safe at {clock.now()} with the controller up"
        # The controller stops; its last refresh is the newest accepted live profile: sent at its expiry (stored
        # in our clock) less the validity, answered (stored ``sent_at``) within one site step of that.
        lm_task.cancel()
        await asyncio.gather(lm_task, return_exceptions=True)
        await csms.flush()
        live, _safe = last_accepted(store)
        (last,) = [s for s in live if s.connector_id == conn]
        answered_at = max(r.sent_at for r in store.charging_profiles("SIM0001") if r.connector_id == conn)
        assert last.valid_to is not None
        refreshed_at = last.valid_to - timedelta(seconds=VALIDITY_S)
        assert 0.0 <= (answered_at - refreshed_at).total_seconds() <= STEP_S
        fell_at = None
        while fell_at is None and (clock.now() - refreshed_at).total_seconds() < VALIDITY_S + 900:
            await _step(site, clock)
            if cp.arrays.limit_w[cp.idx(conn)] <= fail_safe_w + 1e-6:
                fell_at = clock.now()
        assert fell_at is not None, "the charger never fell to its fail-safe"
        after_s = (fell_at - refreshed_at).total_seconds()
        # Within the validity (plus one site step of measurement granularity), and not more than a few
        # seconds early (the estimate's margin: 1 s resolution plus the message delay, which is 0 here).
        assert VALIDITY_S - 2 * STEP_S <= after_s <= VALIDITY_S + STEP_S, after_s
    finally:
        lm_task.cancel()
        await asyncio.gather(lm_task, return_exceptions=True)
        await site.stop()
        await csms.stop()
        store.close()


THETA = -600.05  # the restart tests' charger: its clock is 10 minutes slow, its messages take 50 ms


async def _restarted(tmp_path: Path, samples: int, every_s: float, down_s: float) -> tuple:
    """A central system that heard ``samples`` timestamped messages (``every_s`` apart) from SIM0001, stopped, and
    a new one started ``down_s`` later on the same store, as a restarted controller (before any reconnection).
    Returns ``(after, clock, store, stopped_at)``."""
    cfg = _config(tmp_path)
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    store = Store.open(cfg.store.url)
    before = CentralSystem(cfg, store, clock, EventBus())
    await before.start()
    for _ in range(samples):
        before.clock_sample("SIM0001", clock.now() + timedelta(seconds=THETA), clock.now())
        await clock.advance(every_s)
    stopped_at = clock.now()
    await before.stop()  # commits what is buffered (the stored offset)
    await clock.advance(down_s)
    after = CentralSystem(cfg, store, clock, EventBus())
    await after.start()  # loads the store
    return after, clock, store, stopped_at


async def test_a_restarted_central_system_starts_from_the_stored_clock_offset(tmp_path: Path) -> None:
    after, clock, store, _ = await _restarted(tmp_path, 3, 60.0, 0.0)
    try:
        est = after.clock_estimate("SIM0001")
        assert est is not None
        ours = clock.now() + timedelta(seconds=300)
        theirs = est.charger_time(ours)
        # early side: within the stored margin (1 s), the restart's own (1 s) and 100 ppm of the sample's age
        truth = ours - timedelta(seconds=600)
        assert truth - timedelta(seconds=2.2) <= theirs <= truth
    finally:
        await after.stop()
        store.close()


async def test_after_a_restart_the_backlog_sent_first_does_not_expire_the_live_limit_early(tmp_path: Path) -> None:
    # ten minutes of meter values, then down ten minutes: the charger buffers a meter value every 30 s
    after, clock, store, down_at = await _restarted(tmp_path, 20, 30.0, 600.0)
    cfg = after.config
    manager = LoadManager(cfg, after, after.bus, clock)
    manager.seed_from_csms()
    sent: list[dict] = []

    async def send(cp_id: str, request, **kw):
        sent.append(request.cs_charging_profiles)
        return SimpleNamespace(status="Accepted")

    after.send = send  # type: ignore[method-assign]
    track = manager.tracks[("SIM0001", 1)]
    try:
        # Back: it first sends the 20 meter values it buffered (one every 0.5 s); meanwhile a round pauses its
        # connector (after the 17th: the older samples are then out of the recent set).
        after.liveness.heard("SIM0001", clock.now(), "connected")
        for k in range(20):
            await clock.advance(0.5)
            after.clock_sample("SIM0001", down_at + timedelta(seconds=30 * k + THETA), clock.now())
            if k == 16:
                await manager._send_live(track, 0.0, "no car: 0 A")
                sent_at = clock.now()
        valid_to = datetime.fromisoformat(sent[-1]["validTo"].replace("Z", "+00:00"))
        drops_at = valid_to - timedelta(seconds=THETA)  # our instant the charger's clock reaches validTo
        assert track.valid_until is not None and track.assumed_a == 0.0
        # The charger drops the 0 A where the controller expects it (a little before: the estimate's margin), not
        # earlier: it was 130 s earlier, already past when the profile arrived (the fail-safe governed instead).
        assert track.valid_until - timedelta(seconds=3) <= drops_at <= track.valid_until
        assert drops_at > sent_at
    finally:
        await after.stop()
        store.close()
