"""Building meter replay (real Cambridge data and a synthetic week), in-process and over MQTT to the bridge."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from controller.meter_bridge import MeterBridge
from evsite.bus import EventBus
from evsite.clock import ManualClock
from evsite.meter_reading import BUS_TOPIC, MeterPayloadError, MeterReading, parse_meter_payload
from simulators.meter import (
    BuildingMeter,
    MeterDataError,
    MqttMeterPublisher,
    bus_publisher,
    load_meter_csv,
    replay_start_for,
    synthetic_series,
)

CAMBRIDGE = Path("buildings/cambridge/cambridge_electricity_hourly_kwh_2018_2019.csv")


def test_replay_interpolates_and_wraps(shared_data: Path) -> None:
    series = load_meter_csv(shared_data / CAMBRIDGE, "b21")
    assert series.start == datetime(2018, 1, 1, tzinfo=UTC)
    assert series.power_kw[:2].tolist() == [119.3, 235.3]
    assert float(series.power_at(1800.0)) == pytest.approx((119.3 + 235.3) / 2)
    span = series.span_s
    assert span == pytest.approx(2 * 365 * 86400)
    assert float(series.power_at(span + 3600.0)) == pytest.approx(235.3)  # wrapped to hour 1


@pytest.mark.parametrize(
    ("column", "fragment"),
    [("b9999", "no column 'b9999'"), ("datetime_utc", "time column")],
)
def test_bad_meter_files_say_what_and_where(shared_data: Path, column: str, fragment: str) -> None:
    with pytest.raises(MeterDataError, match=fragment):
        load_meter_csv(shared_data / CAMBRIDGE, column)


def test_missing_readings_and_bad_timestamps(tmp_path: Path) -> None:
    f = tmp_path / "meter.csv"
    f.write_text("time,raw\n2024-01-01T00:00:00Z,10\n2024-01-01T01:00:00Z,?\n2024-01-01T02:00:00Z,30\n")
    assert load_meter_csv(f, "raw").power_kw.tolist() == [10.0, 20.0, 30.0]  # '?' interpolated
    f.write_text("time,raw\n2024-01-01T00:00:00Z,10\nyesterday,20\n")
    with pytest.raises(MeterDataError, match="line 3"):
        load_meter_csv(f, "raw")
    with pytest.raises(MeterDataError, match="not found"):
        load_meter_csv(tmp_path / "nope.csv", "raw")


def test_synthetic_week_is_an_office_and_reproducible() -> None:
    a, b = synthetic_series(seed=3), synthetic_series(seed=3)
    assert np.array_equal(a.power_kw, b.power_kw)
    hour = (a.t_s / 3600) % 24
    day = a.t_s // 86400
    weekday_noon = a.power_kw[(hour == 13) & (day < 5)].mean()
    weekday_night = a.power_kw[(hour == 3) & (day < 5)].mean()
    weekend_noon = a.power_kw[(hour == 13) & (day >= 5)].mean()
    assert weekday_noon > weekend_noon > weekday_night


def test_replay_start_matches_time_of_week() -> None:
    series = synthetic_series(start=datetime(2026, 1, 5, tzinfo=UTC))  # Monday
    now = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)  # a Wednesday
    start = replay_start_for(series, now)
    assert start.weekday() == now.weekday() and start.time() == now.time()


async def test_meter_publishes_on_the_bus_with_an_energy_register(manual_clock: ManualClock) -> None:
    bus = EventBus()
    sub = bus.subscribe(BUS_TOPIC)
    series = synthetic_series(base_kw=100.0, peak_kw=100.0, seed=0)
    meter = BuildingMeter(series, manual_clock, interval_s=10.0)
    task = asyncio.create_task(meter.run(bus_publisher(bus)))
    try:
        await asyncio.sleep(0)
        for _ in range(6):
            await manual_clock.advance(10.0)
        readings = [sub.get_nowait() for _ in range(7)]
        assert all(r is not None and r[0] == BUS_TOPIC for r in readings)
        values = [r[1] for r in readings]  # type: ignore[index]
        assert [v.ts for v in values] == [manual_clock.now() - timedelta(seconds=10 * k) for k in range(6, -1, -1)]
        assert values[-1].energy_kwh == pytest.approx(sum(v.power_kw for v in values[1:]) * 10 / 3600, rel=1e-9)
    finally:
        task.cancel()


async def test_meter_stops_when_the_publisher_swallows_the_cancel(manual_clock: ManualClock) -> None:
    """A publisher that loses the cancel (as ``asyncio.wait_for`` can on CPython 3.11 when the publish completes
    at the same moment) must not keep the meter running: the task ends on its pending cancel
    (``evsite.cancellation``)."""
    entered = asyncio.Event()

    async def swallowing(reading: MeterReading) -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return  # the race: the publish completed, the CancelledError is gone

    meter = BuildingMeter(synthetic_series(seed=0), manual_clock, interval_s=10.0)
    task = asyncio.create_task(meter.run(swallowing))
    await entered.wait()
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert meter.published == 0


BAD_PAYLOADS = [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"power_kw": 5}', "ts: required"),
    (b'{"ts": "2026-03-02T08:00:00", "power_kw": 5}', "time zone"),
    (b'{"ts": "yesterday", "power_kw": 5}', "RFC 3339"),
    (b'{"ts": "2026-03-02T08:00:00Z", "power_kw": "5"}', "power_kw"),
    (b'{"ts": "2026-03-02T08:00:00Z", "power_kw": NaN}', "finite"),
    (b'{"ts": "2026-03-02T08:00:00Z", "power_kw": 5, "energy_kwh": -1}', "negative"),
    (b'{"ts": "2026-03-02T08:00:00Z", "power_kw": 5, "volts": 230}', "unknown field"),
    (b'{"ts": "2026-03-02T08:00:00Z", "power_kw": 5, "meter_id": ""}', "meter_id"),
]


@pytest.mark.parametrize(("raw", "fragment"), BAD_PAYLOADS)
def test_meter_payload_validation(raw: bytes, fragment: str) -> None:
    with pytest.raises(MeterPayloadError, match=fragment):
        parse_meter_payload(raw)


def test_meter_payload_round_trip() -> None:
    r = MeterReading(ts=datetime(2026, 3, 2, 8, tzinfo=UTC), power_kw=182.4, meter_id="main", energy_kwh=12.5)
    assert parse_meter_payload(r.to_json()) == r


async def test_meter_over_mqtt_reaches_the_bus_through_the_bridge(
    mqtt_broker: tuple[str, int], manual_clock: ManualClock
) -> None:
    host, port = mqtt_broker
    topic = f"evsite/test/{uuid.uuid4().hex}/meter"
    bus = EventBus()
    sub = bus.subscribe(BUS_TOPIC)
    bridge = MeterBridge(bus, manual_clock, host, port, topic)
    bridge_task = asyncio.create_task(bridge.run())
    try:
        await asyncio.wait_for(bridge.subscribed.wait(), 5.0)
        series = synthetic_series(seed=1)
        meter = BuildingMeter(series, manual_clock, interval_s=10.0)
        async with MqttMeterPublisher(host, port, topic) as publish:
            for _ in range(3):
                await publish(meter.read())
                await manual_clock.advance(10.0)
            async with aiomqtt.Client(host, port) as raw:
                await raw.publish(topic, b'{"ts": "2026-03-02T08:00:00", "power_kw": 1}')  # naive time: rejected
            await publish(meter.read())
        got = []
        for _ in range(4):
            _, reading = await asyncio.wait_for(sub.get(), 5.0)
            got.append(reading)
        assert [r.power_kw for r in got] == pytest.approx(
            [float(series.power_at(s)) for s in (0.0, 10.0, 20.0, 30.0)], abs=1e-3
        )
        assert bridge.stats.rejected == 1 and bridge.stats.forwarded == 4
    finally:
        bridge_task.cancel()
