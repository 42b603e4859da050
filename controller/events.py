"""Events the central system publishes on the in-process bus (``evsite.bus.EventBus``).

Why frozen dataclasses: subscribers (load management, the regulation dispatcher, the MQTT bridge) run in other
tasks and must not be able to mutate what another subscriber sees.

Topics (see ``controller.csms`` for when each is published):

- ``ocpp/connection`` → ``ConnectionEvent``      a charge point connected or disconnected
- ``ocpp/boot``       → ``BootEvent``            BootNotification accepted
- ``ocpp/capabilities`` → ``CapabilitiesEvent``  smart-charging capabilities read at boot (GetConfiguration)
- ``ocpp/status``     → ``StatusEvent``          StatusNotification (connector 0 is the charge point itself)
- ``ocpp/transaction`` → ``TransactionEvent``    a transaction started or stopped (or closed at reboot)
- ``ocpp/meter``      → ``MeterEvent``           one MeterValues sample set (also StopTransaction's data)
- ``ocpp/profile``    → ``ProfileEvent``         a SetChargingProfile / ClearChargingProfile and its answer
- ``ocpp/online``     → ``ChargerOnlineEvent``   a charger went offline (socket closed, heartbeat timeout) or back
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evsite import topics

TOPIC_CONNECTION = topics.OCPP_CONNECTION
TOPIC_BOOT = topics.OCPP_BOOT
TOPIC_CAPABILITIES = topics.OCPP_CAPABILITIES
TOPIC_STATUS = topics.OCPP_STATUS
TOPIC_TRANSACTION = topics.OCPP_TRANSACTION
TOPIC_METER = topics.OCPP_METER
TOPIC_PROFILE = topics.OCPP_PROFILE
TOPIC_ONLINE = topics.OCPP_ONLINE


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    cp_id: str
    connected: bool
    at: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BootEvent:
    cp_id: str
    vendor: str
    model: str
    firmware_version: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class CapabilitiesEvent:
    """Smart-charging capabilities as the charger reported them (None where it did not)."""

    cp_id: str
    capabilities: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class StatusEvent:
    cp_id: str
    connector_id: int
    status: str
    error_code: str
    at: datetime
    info: str | None = None
    #: True once the charger went offline after reporting this: the connector's real state is unknown.
    stale: bool = False


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    """``kind`` is ``started`` or ``stopped``; ``meter_wh`` is meterStart or meterStop."""

    cp_id: str
    connector_id: int | None
    transaction_id: int
    kind: str
    id_tag: str | None
    meter_wh: int | None
    at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampledValue; ``value`` parsed to float (None when the charger sent a non-number)."""

    measurand: str
    value: float | None
    unit: str | None = None
    phase: str | None = None
    context: str | None = None


@dataclass(frozen=True, slots=True)
class MeterEvent:
    """One meterValue element; the convenience fields sum phases of the usual measurands (SI units)."""

    cp_id: str
    connector_id: int
    transaction_id: int | None
    at: datetime
    samples: tuple[Sample, ...] = field(default_factory=tuple)
    power_w: float | None = None
    current_a: float | None = None
    energy_wh: float | None = None
    soc_pct: float | None = None


@dataclass(frozen=True, slots=True)
class ProfileEvent:
    """A charging-profile request sent to a charger, why it was sent, and the answer (``status``)."""

    cp_id: str
    action: str
    connector_id: int | None
    profile: dict[str, Any] | None
    status: str
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ChargerOnlineEvent:
    """A charger came online (``reason`` ``connected``/``message``) or went offline (``disconnected`` or a
    close reason, ``heartbeat_timeout``). Offline means: its last connector statuses are stale."""

    cp_id: str
    online: bool
    at: datetime
    reason: str
