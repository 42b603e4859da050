"""Every topic on the in-process bus (``evsite.bus.EventBus``), in one place.

Why here: producers and consumers live in different layers (the simulated meter publishes what the
controller's load management reads), and neither may import the other; a typo in a topic string would make a
subscriber silently wait forever. Payload types are named beside each topic.
"""

from __future__ import annotations

#: ``evsite.meter_reading.MeterReading``: the building meter (MQTT bridge, simulated meter).
METER_SITE = "meter/site"
#: ``float`` per unit in -1..1: the regulation signal.
REGULATION_SIGNAL = "regulation/signal"
#: the aggregator's current capacity offer.
REGULATION_CAPACITY = "regulation/capacity"
#: ``evsite.site_state.RegulationSetpoint``: the aggregator's setpoint for one connector, applied by load
#: management inside its own limit (one writer of live profiles per connector).
REGULATION_SETPOINTS = "regulation/setpoints"

#: ``evsite.site_state.SiteLimitOverride``: an operator's temporary site limit (HTTP API -> load management).
LOADMGMT_SITE_LIMIT = "loadmgmt/site_limit"
#: ``str`` naming who asked: recompute the plan now (HTTP API -> load management).
LOADMGMT_REPLAN = "loadmgmt/replan"
#: ``evsite.site_state.TariffTier``: the time-of-use tier now in force, published when it switches.
LOADMGMT_TARIFF = "loadmgmt/tariff"
#: frozen mapping ``{(cp_id, connector_id): limit_a}``: the per-connector limits load management granted,
#: published each time they change; the aggregator never commands a connector above its latest one.
LOADMGMT_LIMITS = "loadmgmt/limits"

#: ``controller.events`` dataclasses, one topic per kind of central-system event.
OCPP_CONNECTION = "ocpp/connection"
OCPP_BOOT = "ocpp/boot"
OCPP_CAPABILITIES = "ocpp/capabilities"
OCPP_STATUS = "ocpp/status"
OCPP_TRANSACTION = "ocpp/transaction"
OCPP_METER = "ocpp/meter"
OCPP_PROFILE = "ocpp/profile"
#: ``controller.events.ChargerOnlineEvent``: a charger went offline (socket closed, heartbeat timeout) or back.
OCPP_ONLINE = "ocpp/online"
#: every OCPP event (prefix subscription).
OCPP_ALL = "ocpp/#"
#: ``evsite.departure_update.DepartureUpdate``: a driver's or operator's departure (and energy) for a session.
LOADMGMT_DEPARTURE = "loadmgmt/departure"
