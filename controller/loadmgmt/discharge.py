"""Discharge through load management: which connectors may feed back, how much, and the profile that says so.

The convention (negative limit in the live TxDefaultProfile, declared twice) is ``evsite.discharge``. Here:

- ``may_discharge``: the ``[[chargers]]`` entry says ``bidirectional = true`` *and* the charger reported
  ``BidirectionalCharging = true`` at boot. Every other connector's discharge bound is 0, so a negative
  regulation setpoint becomes 0 A there and no negative limit is ever sent to it.
- ``discharge_bounds_a``: discharge lowers the site's import, so the import limit never constrains it; what
  does is export. The site may feed back at most ``[site] export_limit_kw`` (0 by default: no export), so
  the connectors together may discharge the building's measured load (less ``reserve_kw``, the change
  allowed between readings) plus that allowance. With a stale or missing meter the building counts as 0.
  The allowance is shared equally (water-filled up to each connector's rating) among the connectors that
  may discharge and have a car and an acknowledged limit; when the equal share would fall below the minimum
  current (so none could feed back), it goes to fewer of them, those already discharging first.
- ``live_profile``: load management's live profile with a signed limit, rounded towards zero.

Pure functions; the manager calls them once per allocation round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from controller.loadmgmt import profiles as prof
from evsite.discharge import declared, signed_rate


def may_discharge(bidirectional: bool, capabilities: Mapping[str, Any] | None) -> bool:
    """Declared twice (``evsite.discharge``): by the operator's config and by the charger itself."""
    return bool(bidirectional) and declared(capabilities)


def discharge_bounds_a(
    max_kw: Sequence[float], kw_per_a: Sequence[float], allowance_kw: float, min_kw: Sequence[float] | None = None
) -> np.ndarray:
    """Per eligible connector (in priority order), the most it may feed back (A per phase): ``allowance_kw``
    shared equally, no connector above ``max_kw`` (its rating), what one cannot take going to the others
    (water-filling). A share below a connector's ``min_kw`` (its minimum current) could not be served at all,
    so then the allowance goes to fewer connectors, the first in the order, each at least at its minimum."""
    cap = np.asarray(max_kw, float)
    per_a = np.asarray(kw_per_a, float)
    floor = np.zeros(cap.size) if min_kw is None else np.asarray(min_kw, float)
    share = np.zeros(cap.size)
    for n in range(cap.size, 0, -1):  # the most connectors that can each get their minimum
        share[:] = 0.0
        share[:n] = _water_fill(cap[:n], allowance_kw)
        if np.all(share[:n] >= floor[:n] - 1e-9):
            break
    else:
        share[:] = 0.0
    return share / per_a


def _water_fill(cap: np.ndarray, total: float) -> np.ndarray:
    """``total`` shared equally among ``cap.size`` connectors, none above its ``cap``."""
    share = np.zeros(cap.size)
    left = max(float(total), 0.0)
    for k, i in enumerate(np.argsort(cap, kind="stable")):
        share[i] = min(cap[i], left / (cap.size - k))
        left -= share[i]
    return share


def live_profile(shape: prof.Shape, connector_id: int, amps: float, *when: Any, **kw: Any) -> dict[str, Any]:
    """``profiles.live_profile`` (the same arguments after ``amps``: ``now, valid_s, stack`` and the charger's
    ``clock``) with a signed limit: a negative ``amps`` is a discharge setpoint."""
    profile = prof.live_profile(shape, connector_id, amps, *when, **kw)
    if amps < 0:
        period = profile["chargingSchedule"]["chargingSchedulePeriod"][0]
        period["limit"] = signed_rate(amps, shape.unit, shape.voltage_v, shape.phases)
    return profile
