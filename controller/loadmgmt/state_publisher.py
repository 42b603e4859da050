"""The site state over MQTT (``[site] state_topic``): total, building and EV load, headroom, every limit.

Why: SCADA and Home Assistant read a retained JSON document rather than the OCPP traffic. Published every
``[site] period_s`` (and retained, so a dashboard that connects later sees the latest at once); a broker that
is down is retried with backoff on the clock and never stops load management.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

from evsite.cancellation import raise_if_cancelling
from evsite.clock import Clock
from evsite.config import MqttConfig, SiteConfig
from evsite.log import log_event
from evsite.site_state import SiteState

log = logging.getLogger("controller.loadmgmt.state_publisher")


def state_json(state: SiteState) -> str:
    """One JSON document: times as RFC 3339, numbers rounded to what a meter shows."""
    doc = asdict(state)
    doc["at"] = state.at.isoformat()
    for key in ("building_kw", "ev_kw", "total_kw", "limit_kw", "headroom_kw"):
        if doc[key] is not None:
            doc[key] = round(doc[key], 3)
    return json.dumps(doc)


async def publish_site_state(manager: Any, mqtt: MqttConfig, site: SiteConfig, clock: Clock) -> None:
    """Publish ``manager.site_state()`` until cancelled, reconnecting with exponential backoff."""
    import aiomqtt

    delay = 1.0
    while True:
        try:
            async with aiomqtt.Client(mqtt.host, mqtt.port) as client:
                delay = 1.0
                while True:
                    await client.publish(site.state_topic, state_json(manager.site_state()), retain=True)
                    raise_if_cancelling()  # a cancel aiomqtt's publish swallowed (evsite.cancellation)
                    await clock.sleep(site.period_s)
        except aiomqtt.MqttError as err:
            log_event(log, "site_state_publish_failed", logging.WARNING, error=str(err), retry_s=delay)
            await clock.sleep(delay)
            delay = min(delay * 2, 60.0)
