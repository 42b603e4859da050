"""The site runtime with [mqtt] and [regulation] enabled, against the real Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiomqtt

from controller.runtime import SiteRuntime
from evsite.clock import RealClock
from evsite.config import parse_config_text
from tests.waiting import eventually


async def test_meter_and_regulation_signal_reach_the_running_site(tmp_path: Path, mqtt_broker) -> None:
    host, port = mqtt_broker
    topic = f"evsite-test/{uuid.uuid4().hex[:8]}"
    config = parse_config_text(f"""
[server]
host = "127.0.0.1"
port = 0
[store]
url = "sqlite:///{tmp_path / "site.db"}"
[[chargers]]
id = "CP1"
bidirectional = true
[mqtt]
enabled = true
host = "{host}"
port = {port}
meter_topic = "{topic}/meter"
regulation_topic = "{topic}/regulation"
[regulation]
enabled = true
""")
    site = SiteRuntime(config, RealClock())
    await site.start()
    try:
        assert site.regulation is not None
        assert site.regulation.live.estimate.store is site.store  # departures estimated from the site's history
        reading = {"ts": "2026-03-02T08:00:00+00:00", "power_kw": 182.4, "meter_id": "main"}
        signal = {"ts": "2026-03-02T08:00:02+00:00", "value": 0.5}
        async with aiomqtt.Client(host, port) as client:
            for _ in range(40):  # the bridges subscribe asynchronously: repeat until they have heard
                await client.publish(f"{topic}/meter", json.dumps(reading))
                await client.publish(f"{topic}/regulation", json.dumps(signal))
                if site.bus.last("meter/site") and site.bus.last("regulation/signal"):
                    break
                await asyncio.sleep(0.1)
        await eventually(lambda: site.bus.last("meter/site") is not None, 10.0, "the meter reading on the bus")
        assert site.bus.last("meter/site").power_kw == 182.4
        await eventually(lambda: site.bus.last("regulation/signal") is not None, 10.0, "the signal on the bus")
        assert site.bus.last("regulation/signal").value == 0.5
    finally:
        await site.stop()
