"""Retention: meter values, events and the id tags of closed transactions older than ``retention_days`` are
pruned, in batches, without touching newer data or open transactions."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from controller.csms import CentralSystem
from controller.store.retention import prune
from controller.store.store import WriteBatch
from evsite.clock import ManualClock


async def test_prune_removes_only_what_is_older_than_the_retention(make_csms, manual_clock: ManualClock) -> None:
    csms: CentralSystem = await make_csms()
    store, now = csms.store, manual_clock.now()
    old, recent = now - timedelta(days=401), now - timedelta(days=399)

    def seed() -> None:
        rows = [
            {"cp_id": "CP1", "connector_id": 1, "transaction_id": None, "timestamp": ts, "measurand": "SoC",
             "value": float(i), "raw_value": str(i), "unit": None, "phase": None, "context": None, "location": None}
            for i, ts in enumerate([old] * 23 + [recent] * 5)
        ]  # fmt: skip
        store.write_batch(WriteBatch(meter_values=rows))
        store.add_events([{"at": t, "cp_id": "CP1", "kind": "boot", "data": None} for t in [old] * 7 + [recent] * 2])
        for n, start in enumerate((old, old, recent)):
            tx, _ = store.start_transaction("CP1", 1, f"DRIVER-{n}", 0, start, "Accepted")
            if n < 2 or start == recent:
                store.stop_transaction("CP1", tx, 10, start + timedelta(hours=1), None, f"DRIVER-{n}")
        store.start_transaction("CP2", 1, "STILL-OPEN", 0, old, "Accepted")

    await csms.db.run(seed)
    counts = await prune(csms.db, store, now - timedelta(days=400), batch=4)  # many small batches
    assert counts == {"meter_values": 23, "events": 7, "id_tags_blanked": 2}
    assert sorted(m.value for m in store.meter_values()) == [23.0, 24.0, 25.0, 26.0, 27.0]
    assert all(e.at >= recent for e in store.events(kind="boot"))
    tags = [(t.id_tag, t.stop_id_tag, t.meter_stop) for t in store.transactions()]
    assert tags == [(None, None, 10), (None, None, 10), ("DRIVER-2", "DRIVER-2", 10), ("STILL-OPEN", None, None)]


async def test_prune_lets_the_event_loop_run_between_batches(make_csms, manual_clock: ManualClock) -> None:
    csms: CentralSystem = await make_csms(url=None)
    store, old = csms.store, manual_clock.now() - timedelta(days=500)
    await csms.db.run(store.add_events, [{"at": old, "cp_id": None, "kind": "x", "data": None}] * 50)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    counts = await prune(csms.db, store, manual_clock.now(), batch=5)
    task.cancel()
    assert counts["events"] == 50 and ticks >= 10  # the loop ran at least once per batch


async def test_retention_setting_drives_the_cutoff(make_csms, manual_clock: ManualClock) -> None:
    csms: CentralSystem = await make_csms()
    csms.config = csms.config.model_copy(update={"store": csms.config.store.model_copy(update={"retention_days": 30})})
    await csms.db.run(
        csms.store.add_events,
        [{"at": manual_clock.now() - timedelta(days=d), "cp_id": None, "kind": "x", "data": None} for d in (29, 31)],
    )
    assert (await csms.prune_retention())["events"] == 1
