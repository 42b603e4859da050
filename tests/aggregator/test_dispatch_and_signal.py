"""Dispatch to OCPP chargers (stand-in recorder), the signal file, payloads, and MQTT with the real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from controller.aggregator.dispatch import ConnectorRef, ProfileDispatcher, can_discharge_mask, connectors_from_config
from controller.aggregator.signal_source import SignalPayloadError, SignalSubscriber, parse_signal_payload
from evsite.bus import EventBus
from evsite.config import parse_config_text
from simulators.regulation_signal import SignalFileError, load_signal, publish_signal, signal_payload


class Result:
    def __init__(self, status: str) -> None:
        self.status = status


class Recorder:
    """Stands in for CentralSystem.send: records every request, answers with a fixed status."""

    def __init__(self, status: str = "Accepted", fail_for: str | None = None) -> None:
        self.calls: list[tuple[str, object, str | None]] = []
        self.status, self.fail_for = status, fail_for

    async def send(self, cp_id: str, request: object, reason: str | None = None) -> Result:
        if cp_id == self.fail_for:
            raise ConnectionError(f"{cp_id} is not connected")
        self.calls.append((cp_id, request, reason))
        return Result(self.status)


CONFIG = """
[[chargers]]
id = "UNI"
connectors = 2
max_current_a = 16
voltage_v = 230
phases = 3

[[chargers]]
id = "V2G"
connectors = 1
max_current_a = 32
voltage_v = 120
phases = 1
bidirectional = true
"""


@pytest.fixture
def refs() -> list[ConnectorRef]:
    return connectors_from_config(parse_config_text(CONFIG).chargers)


def test_connectors_from_config(refs: list[ConnectorRef]) -> None:
    assert [(r.cp_id, r.connector_id, r.bidirectional) for r in refs] == [
        ("UNI", 1, False), ("UNI", 2, False), ("V2G", 1, True)]  # fmt: skip
    assert can_discharge_mask(refs).tolist() == [False, False, True]
    assert refs[0].power_kw(16) == pytest.approx(16 * 230 * 3 / 1000)
    assert refs[2].power_kw(32) == pytest.approx(32 * 120 / 1000)


def _limits(rec: Recorder) -> dict[tuple[str, int], float]:
    return {(cp, r.connector_id): r.cs_charging_profiles["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
            for cp, r, _ in rec.calls}  # fmt: skip


async def test_setpoints_become_current_limits_with_reasons_and_never_discharge_unidirectional(refs) -> None:
    """kW through each charger's own voltage and phases, clipped to its rating; a negative setpoint for a
    unidirectional connector is refused and never sent."""
    rec = Recorder()
    d = ProfileDispatcher(rec.send, refs)
    res = await d.apply_setpoints(np.array([0, 1, 2]), np.array([0.0, -3.0, -2.4]),
                                  ["regulation_modulate", "regulation_switch", "regulation_switch"])  # fmt: skip
    assert res.refused == 1 and res.sent == 2 and res.accepted == 2
    assert _limits(rec) == {("UNI", 1): 0.0, ("V2G", 1): -20.0}  # 2.4 kW at 120 V single phase
    uni = next(r for cp, r, _ in rec.calls if cp == "UNI")
    assert uni.cs_charging_profiles["chargingProfilePurpose"] == "TxDefaultProfile"
    assert uni.cs_charging_profiles["chargingSchedule"]["chargingRateUnit"] == "A"
    assert {why for _, _, why in rec.calls} == {"regulation_modulate", "regulation_switch"}
    rec.calls.clear()
    await d.apply_setpoints(np.array([0, 2]), np.array([50.0, -50.0]), ["a", "b"])
    assert _limits(rec) == {("UNI", 1): 16.0, ("V2G", 1): -32.0}  # never beyond the rating


async def test_dispatch_records_rejections_and_transport_errors(refs) -> None:
    res = await ProfileDispatcher(Recorder(status="Rejected").send, refs).apply_setpoints(
        np.array([0]), np.array([11.0]), ["regulation_switch"])  # fmt: skip
    assert res.accepted == 0 and res.failed == [("UNI", 1, "Rejected")]
    res = await ProfileDispatcher(Recorder(fail_for="UNI").send, refs).apply_setpoints(
        np.array([0, 2]), np.array([11.0, 3.0]), ["regulation_switch"] * 2)  # fmt: skip
    assert res.accepted == 1 and res.failed[0][:2] == ("UNI", 1) and "not connected" in res.failed[0][2]


# ------------------------------------------------------------------------------------------------ signal


def test_load_real_regd_signal(shared_data) -> None:
    s = load_signal(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv")
    assert s.value.size == 86_400 and s.duration_s == pytest.approx(2 * 86_400)
    assert s.start == datetime(2020, 7, 16)
    steps = s.on_steps(3600.0, 4.0, 900)
    np.testing.assert_array_equal(steps, s.value[1800:3600:2])
    assert s.index_at(datetime(2020, 7, 16, 0, 0, 3)) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp,regd\n2020-07-16 00:00:00,0.1\nyesterday,0.2\n", "line 3: not a timestamp"),
        ("timestamp,regd\n2020-07-16 00:00:00,0.1\n2020-07-16 00:00:02,1.7\n", "line 3: value must be a number in"),
        ("timestamp,regd\n2020-07-16 00:00:02,0.1\n2020-07-16 00:00:00,0.2\n", "line 3: timestamps must increase"),
        ("timestamp\n2020-07-16 00:00:00\n2020-07-16 00:00:02\n", "expected a header, then rows"),
    ],
)
def test_bad_signal_files_say_what_and_where(tmp_path, text: str, message: str) -> None:
    p = tmp_path / f"{uuid.uuid4().hex}.csv"
    p.write_text(text)
    with pytest.raises(SignalFileError, match=message):
        load_signal(p)


def test_signal_shorter_than_the_run_is_a_clear_error(tmp_path) -> None:
    p = tmp_path / "short.csv"
    p.write_text("t,v\n2020-07-16 00:00:00,0.1\n2020-07-16 00:00:02,0.2\n")
    with pytest.raises(SignalFileError, match=r"covers 0\.00 h"):
        load_signal(p).on_steps(0.0, 4.0, 900)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("nope", "not JSON"),
        ('{"ts": "2026-03-02T08:00:00+00:00"}', "value: required"),
        ('{"ts": "2026-03-02T08:00:00", "value": 0.1}', "needs a time zone"),
        ('{"ts": "2026-03-02T08:00:00+00:00", "value": 1.5}', "value: expected a number in"),
        ('{"ts": "2026-03-02T08:00:00+00:00", "value": true}', "value: expected a number in"),
        ('{"ts": "2026-03-02T08:00:00+00:00", "value": 0.1, "x": 1}', "unknown field"),
    ],
)
def test_bad_signal_payloads_are_rejected(payload: str, message: str) -> None:
    with pytest.raises(SignalPayloadError, match=message):
        parse_signal_payload(payload)


def test_subscriber_republishes_valid_samples_and_drops_bad_ones() -> None:
    bus = EventBus()
    sub = bus.subscribe("regulation/signal")
    s = SignalSubscriber(bus, clock=None)  # type: ignore[arg-type]  # handle() needs no clock
    ts = datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert s.handle(signal_payload(ts, -0.25)).value == -0.25
    assert s.handle(b'{"ts": 1}') is None
    assert s.received == 2 and s.rejected == 1
    assert sub.get_nowait()[1].value == -0.25 and sub.get_nowait() is None


async def test_signal_over_real_mosquitto(mqtt_broker, tmp_path) -> None:
    from evsite.clock import ScaledClock

    host, port = mqtt_broker
    topic = f"evsite-test/{uuid.uuid4().hex}/regulation"
    p = tmp_path / "sig.csv"
    p.write_text("t,v\n" + "".join(f"2020-07-16 00:00:{2 * i:02d},{(i - 5) / 10}\n" for i in range(10)))
    signal = load_signal(p)
    bus = EventBus()
    got = bus.subscribe("regulation/signal")
    clock = ScaledClock(speed=50.0)
    sub = SignalSubscriber(bus, clock, host, port, topic)
    task = asyncio.create_task(sub.run())
    try:
        await asyncio.wait_for(sub.subscribed.wait(), 5)
        sent = await asyncio.wait_for(publish_signal(signal, clock, host, port, topic), 10)
        values = [(await asyncio.wait_for(got.get(), 5))[1].value for _ in range(sent)]
    finally:
        task.cancel()
    assert sent == 10 and values == pytest.approx([(i - 5) / 10 for i in range(10)])
    assert json.loads(signal_payload(datetime(2026, 1, 1, tzinfo=UTC), 0.5))["value"] == 0.5


async def test_dispatch_stays_inside_the_limits_load_management_publishes(refs) -> None:
    """The contract with load management: the latest ``loadmgmt/limits`` mapping bounds every command, and a
    connector without a grant gets nothing."""
    from types import MappingProxyType

    from controller.aggregator.limits import LimitGate
    from evsite import topics
    from evsite.bus import EventBus
    from evsite.site_state import ConnectorEnvelope

    bus = EventBus()
    gate = LimitGate(bus)
    rec = Recorder()
    d = ProfileDispatcher(rec.send, refs, gate=gate)
    idx = np.array([0, 1, 2])
    setpoints = np.array([11.04, 11.04, -3.84])  # full charge, full charge, full discharge (32 A x 120 V)
    reasons = ["regulation_switch"] * 3
    res = await d.apply_setpoints(idx, setpoints, reasons)  # nothing granted yet: nothing sent
    assert rec.calls == [] and res.refused == 3
    bus.publish(topics.LOADMGMT_LIMITS, MappingProxyType({("UNI", 1): 20.0, ("V2G", 1): ConnectorEnvelope(10.0, 8.0)}))
    bus.publish(topics.LOADMGMT_LIMITS,  # the latest wins
                MappingProxyType({("UNI", 1): 6.0, ("V2G", 1): ConnectorEnvelope(10.0, 8.0)}))  # fmt: skip
    res = await d.apply_setpoints(idx, setpoints, reasons)
    sent = {(cp, req.connector_id): req.cs_charging_profiles["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
            for cp, req, _ in rec.calls}  # fmt: skip
    assert sent == {("UNI", 1): 6.0, ("V2G", 1): -8.0}  # UNI 2 has no grant; discharge within its own bound
    assert res.refused == 1
    assert all("load_management_limit" in why for _, _, why in rec.calls)
    assert gate.limit_kw(refs).tolist() == pytest.approx([6 * 230 * 3 / 1000, 0.0, 10 * 120 / 1000])
    assert gate.discharge_kw(refs).tolist() == pytest.approx([0.0, 0.0, 8 * 120 / 1000])
    # a bare number is a charging grant only: no discharge at all
    bus.publish(topics.LOADMGMT_LIMITS, MappingProxyType({("UNI", 1): 6.0, ("V2G", 1): 10.0}))
    rec.calls.clear()
    await d.apply_setpoints(idx, setpoints, reasons)
    assert [(cp, req.cs_charging_profiles["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"])
            for cp, req, _ in rec.calls if cp == "V2G"] == [("V2G", 0.0)]  # fmt: skip
