"""Stand-ins for hardware: OCPP charge points, EV fleets, building meters and regulation signals."""
