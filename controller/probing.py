"""Capability probing after boot: read the smart-charging keys, then set the meter sampling from config.

Why after boot and only when needed: load management needs each charger's profile limits (stack levels,
periods, rate units) before it sends a profile, but a 2,000-charger reconnect storm must not cost 6,000 extra
calls; so the probe runs when the capabilities are unknown, the firmware changed, or ``probe_every_boot``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from controller import events as ev
from controller.errors import ChargePointNotConnected, CsmsError
from evsite.discharge import CAPABILITY_KEY as DISCHARGE_KEY
from evsite.log import log_event

if TYPE_CHECKING:
    from controller.csms import CentralSystem

log = logging.getLogger("controller.probing")

#: Configuration keys read at boot: the smart-charging capabilities, the connector count, and the vendor key
#: by which a charger declares discharge (``evsite.discharge``; unknown to most chargers: then None).
CAPABILITY_KEYS = (
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleAllowedChargingRateUnit",
    "ChargingScheduleMaxPeriods",
    "MaxChargingProfilesInstalled",
    "NumberOfConnectors",
    DISCHARGE_KEY,
)


def probe_needed(known_caps: dict[str, Any] | None, old_fw: str | None, new_fw: str | None, every_boot: bool) -> bool:
    return known_caps is None or old_fw != new_fw or every_boot


async def probe_and_configure(csms: CentralSystem, cp_id: str) -> None:
    """GetConfiguration of ``CAPABILITY_KEYS`` (stored, published on ``ocpp/capabilities``), then
    ChangeConfiguration of the sampling interval and measurands. A charger that leaves meanwhile is an
    ordinary event (info), not a failure."""
    from ocpp.v16 import call

    # Let the BootNotification answer go out first: the charger may not take calls before it.
    await asyncio.sleep(0)
    srv = csms.config.server
    try:
        conf = await csms.send(cp_id, call.GetConfiguration(key=list(CAPABILITY_KEYS)))
        caps: dict[str, Any] = dict.fromkeys(CAPABILITY_KEYS)
        for item in conf.configuration_key or []:
            if item.get("key") in caps:
                caps[item["key"]] = config_value(item.get("value"))
        # Write-behind like the other charger fields: a first-boot storm of 10,000 must not queue 10,000
        # single-row commits on the writer thread before the sampling configuration goes out.
        csms.db.batch.cp_fields.setdefault(cp_id, {})["capabilities"] = caps
        csms.db.changed()
        known = csms.registry.known.get(cp_id)
        if known is not None:
            known.capabilities = caps
        csms.bus.publish(ev.TOPIC_CAPABILITIES, ev.CapabilitiesEvent(cp_id, caps, csms.clock.now()))
        log_event(log, "capabilities_read", cp_id=cp_id, **caps)
        for key, value in (
            ("MeterValueSampleInterval", str(srv.meter_value_sample_interval_s)),
            ("MeterValuesSampledData", ",".join(srv.meter_values_sampled_data)),
        ):
            res = await csms.send(cp_id, call.ChangeConfiguration(key=key, value=value))
            csms.record_event(cp_id, "configuration_changed", key=key, value=value, status=str(res.status))
    except ChargePointNotConnected:
        csms.record_event(cp_id, "probe_interrupted", error="disconnected")
        log_event(log, "probe_interrupted", cp_id=cp_id, why="charger disconnected")
    except CsmsError as err:
        csms.record_event(cp_id, "probe_failed", error=str(err))
        log_event(log, "probe_failed", logging.WARNING, cp_id=cp_id, error=str(err))


def config_value(value: str | None) -> Any:
    """GetConfiguration values are strings; numbers become ints, lists stay comma-separated strings."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value
