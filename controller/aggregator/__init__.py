"""The frequency-regulation aggregator (issue 5): parked EVs follow a grid operator's regulation signal.

- ``core``: the decision step (SSM state, control law, which cars switch, why) — pure.
- ``simulate``: the closed loop against the Monte Carlo fleet (``evsite regulate``, benchmark) — pure.
- ``dispatch``: mode changes -> OCPP 1.6 SetChargingProfile via ``CentralSystem.send``; discharge only to
  chargers declared ``bidirectional``.
- ``signal_source``: the regulation signal from MQTT onto the bus (``regulation/signal``).
- ``service``: the live loop on a clock, fed by the central system's bus events.

The model itself (A estimation, control law, capacity) is in ``planning.ssm``; PJM scoring in
``planning.pjm_score``; the fleet in ``evsite.ev_fleet``.
"""
