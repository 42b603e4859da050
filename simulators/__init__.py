"""Stand-ins for hardware: OCPP charge points, EV fleets, building meters and regulation signals.

Modules:

- ``smart_charging``: OCPP 1.6 section 3.13 as pure functions (profiles, stacking, composite schedule, units).
- ``chargepoint``: ``SimChargePoint``, one OCPP 1.6J charge point on the ``ocpp`` library (quirks, faults,
  offline outbox).
- ``connectors``: every connector's electrical state as numpy arrays and the vectorised power step.
- ``site``: ``SimulatedSite`` / ``run_simulation``: many chargers, the EV fleet plugging in, a building meter.
- ``meter``: building meter replay (CSV or synthetic) publishing in-process or over MQTT.
- ``fleet``: the vectorised EV population (regulation engineer); ``regulation_signal``: the regulation signal.
"""
