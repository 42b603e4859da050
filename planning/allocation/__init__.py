"""The pure allocation core: site constraints + live load + sessions -> a limit for every connector.

Load management (``controller/``) runs it live; the site sizing simulation and ``evsite replay`` run it on
recorded load and real sessions. It lives in ``planning/`` because ``planning/`` may not import
``controller/``, and ``controller/`` may use ``planning/``'s pure cores. No I/O, no clock, no logging:
everything it needs is in the ``Snapshot``.

- ``model``: ``Constraints`` (``A @ x <= b`` over connector currents), ``Sessions`` (arrays over connectors),
  ``Snapshot``, ``Allocation`` (limit and reason per connector).
- ``policies``: ``allocate(snapshot, policy)`` with ``equal``, ``priority``, ``edf``, ``llf``.
"""

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
    "Sessions",
    "Snapshot",
    "allocate",
]
