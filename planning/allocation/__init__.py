"""The pure allocation core: site constraints + live load + sessions -> a limit for every connector.

Load management (``controller/``) runs it live; the site sizing simulation and ``evsite replay`` run it on
recorded load and real sessions. It lives in ``planning/`` because ``planning/`` may not import
``controller/``, and ``controller/`` may use ``planning/``'s pure cores. No I/O, no clock, no logging:
everything it needs is in the ``Snapshot``.

- ``model``: ``Constraints`` (``A @ x <= b`` over connector currents), ``Sessions`` (arrays over connectors),
  ``Snapshot``, ``Allocation`` (limit and reason per connector).
- ``policies``: ``allocate(snapshot, policy)`` with ``equal``, ``priority``, ``edf``, ``llf`` and ``mpc``.
- ``mpc``: the deadline-aware optimiser (a model-predictive LP over the present cars' stays).
- ``departure``: the departure estimate per id tag from the history of stays (OCPP 1.6 carries none).
- ``acn``, ``replay``, ``offline``: recorded sessions (ACN-Data), their period-by-period replay through
  ``allocate`` against one cap, and the offline optima (HiGHS) the replay is read against.
"""

from planning.allocation.departure import DepartureEstimate, DepartureHistory, estimate_departures
from planning.allocation.model import (
    J1772_MIN_A,
    Allocation,
    AllocationInputError,
    Constraints,
    Sessions,
    Snapshot,
)
from planning.allocation.policies import POLICIES, allocate

__all__ = [
    "J1772_MIN_A",
    "POLICIES",
    "Allocation",
    "AllocationInputError",
    "Constraints",
    "DepartureEstimate",
    "DepartureHistory",
    "Sessions",
    "Snapshot",
    "allocate",
    "estimate_departures",
]
