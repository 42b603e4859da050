"""OCPP-J 1.6 router shared by the central system (``controller.ocpp``) and the simulated charge point.

Why our own router and not the ``ocpp`` library's ``ChargePoint``: the library (i) drops a malformed frame
without answering, (ii) answers an unknown action with NotSupported and a known-but-unhandled one with
NotImplemented, the reverse of OCPP-J 1.6 §4.2.3, (iii) uses the 2.0.1 code ``FormatViolation`` where 1.6 says
``FormationViolation``, and (iv) runs jsonschema in a thread pool, ~110 µs and a thread hop per message. Both
sides of evsite must answer every defect with the code the spec prescribes and keep the connection working,
so framing (``framing``), schema validation (``validation``), key-case conversion (``payloads``) and dispatch
(``dispatch``) live here, once, built only on the library's public names: its payload dataclasses
(``ocpp.v16.call``/``call_result``), its ``Action`` enum, its error classes' codes and its JSON schema files.
"""
