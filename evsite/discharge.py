"""Discharge (vehicle-to-grid) over OCPP 1.6: the convention evsite uses, shared by the controller and the
simulated chargers.

OCPP 1.6 has no standard way to say that a charger can feed power back, nor to command it. evsite uses:

- **Declaration, twice.** The operator marks the charger ``bidirectional = true`` in ``[[chargers]]``, *and*
  the charger itself reports the vendor configuration key ``BidirectionalCharging`` = ``true`` in its
  GetConfiguration answer (read at boot with the smart-charging keys). A charger missing either is never
  sent a discharge: the config flag alone could be a typo or a replaced unit, the key alone a charger the
  operator never meant to export through.
- **Command.** Discharge is a *negative* ``limit`` in the connector's live TxDefaultProfile, in the unit the
  charger accepts (A per phase or W), the same profile load management already sends (vendors that support
  V2G on OCPP 1.6 commonly read a negative limit this way). Why a profile and not a DataTransfer message:
  the profile inherits every safety property of the live limits. It expires (``validTo``) so a controller
  that dies leaves the charger on its positive fail-safe within ``[site] profile_validity_s``; the
  composite schedule is a minimum, so a ChargePointMaxProfile ceiling still caps charging while a negative
  limit passes through it; it carries its reason to the store like any other limit; and there is one writer
  per connector (load management), so a discharge cannot mask a lower limit. A DataTransfer command has
  none of these: it would persist after a crash and be invisible to GetCompositeSchedule.
- **Magnitude.** ``|limit|`` is the most the charger may feed back; a magnitude below the minimum current
  (IEC 61851: 6 A per phase) is not served, as for charging. Rounded towards zero, never up.

A charger that has not declared it answers a negative limit with Rejected (the simulated charger does, as
OCPP 1.6 defines no negative limit), and the controller never sends one to it (``controller.loadmgmt.discharge``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: The vendor configuration key a bidirectional charger reports as "true" (GetConfiguration).
CAPABILITY_KEY = "BidirectionalCharging"


def declared(capabilities: Mapping[str, Any] | None) -> bool:
    """Whether a charger's configuration keys declare discharge (``BidirectionalCharging`` = true)."""
    value = (capabilities or {}).get(CAPABILITY_KEY)
    return str(value).strip().lower() == "true" if value is not None else False


def signed_rate(amps: float, unit: str, voltage_v: float, phases: int) -> float:
    """``amps`` per phase (negative: discharge) as a profile limit in ``unit`` ("A" or "W"), rounded
    towards zero (0.1 A, whole watts): neither direction is ever rounded up."""
    value = amps * 10.0 if unit == "A" else amps * voltage_v * phases
    value = math.copysign(math.floor(abs(value) + 1e-6), value)
    return value / 10.0 if unit == "A" else value
