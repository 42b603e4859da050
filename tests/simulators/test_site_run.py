"""``SimulatedSite.run``: the in-process API ``evsite demo`` uses (chargers + fleet + meter on the bus)."""

from __future__ import annotations

import asyncio

import pytest

from evsite.bus import EventBus
from evsite.clock import ManualClock
from evsite.meter_reading import BUS_TOPIC
from simulators.meter import BuildingMeter, bus_publisher, synthetic_series
from simulators.site import SimulatedSite, charger_specs
from tests.simulators.helpers import settle, small_fleet
from tests.simulators.recording_csms import RecordingCSMS


async def test_run_stops_after_the_simulated_hours_with_a_summary(manual_clock: ManualClock) -> None:
    bus = EventBus()
    readings = bus.subscribe(BUS_TOPIC)
    meter = BuildingMeter(synthetic_series(seed=0), manual_clock, interval_s=60.0)
    async with RecordingCSMS(interval_s=300) as csms:
        site = SimulatedSite(
            csms.url,
            manual_clock,
            charger_specs(2, 2),
            small_fleet(4, arrival_s=60.0, departure_s=1200.0),
            meter=meter,
            meter_publish=bus_publisher(bus),
        )
        task = asyncio.create_task(site.run(hours=0.5))
        await site.wait_online(5.0)
        while not task.done():
            await manual_clock.advance(10.0)
            await settle()
        summary = task.result()
    assert summary.simulated_hours == pytest.approx(0.5)
    assert summary.chargers == 2 and summary.connectors == 4
    assert summary.transactions_started == 4 and summary.transactions_stopped == 4
    assert summary.energy_kwh == pytest.approx(4 * 11.0 * (1200 - 60) / 3600, rel=0.02)
    assert summary.messages_pending == 0 and summary.reconnects == 0
    assert summary.meter_readings == readings.queue.qsize() == 31  # t = 0, 60, ..., 1800 s
    assert "transactions started / stopped" in summary.format()
    assert all(not cp.online.is_set() for cp in site.chargers), "run() must stop the chargers"
