"""What an allocation sees and what it returns: linear site constraints, sessions as arrays, limits with reasons.

Why linear constraints over currents (after ACN-Sim): a site is a tree of service, panels and circuits, each
with a limit per phase, and a plan ceiling in kW on top. Every one of them is a row ``k`` of ``A @ x <= b``,
where ``x[i]`` is connector ``i``'s current in A per phase and ``A[k, i]`` says how much one ampere of
connector ``i`` counts in row ``k`` (1 on a phase conductor it uses, its kW per ampere in a kW row, 0 where
it is not below that node). One matrix serves the tree, the phases and the plan, and a policy never needs to
know which row is which: only its name, for the reason a limit carries.

Why struct-of-arrays sessions: the live loop, the year-long sizing simulation in ``planning`` and the replay of
real sessions all call the same function thousands of times; arrays over connectors keep each call a few
vectorised operations.

Units: currents in A per phase, energy in kWh, times in seconds relative to the snapshot's ``now`` (a
departure in 3 h is ``departure_s = 10800``), ``period_s`` is how long a limit will hold before the next
allocation. Unknown quantities are NaN (energy requested, departure), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

#: SAE J1772 / IEC 61851: below 6 A a car may not charge at all, so a connector is paused rather than given less.
J1772_MIN_A = 6.0


class AllocationInputError(ValueError):
    """A snapshot whose arrays do not fit together; ``str()`` names the field and the expected shape."""


@dataclass(frozen=True)
class Constraints:
    """The site as ``A @ x <= b`` over connector currents (see the module docstring).

    ``b`` is the limit of each row *before* the load that is not under control (building load, chargers
    assumed at a fixed draw): the snapshot subtracts that, so a constraint set is built once per site.
    """

    A: FloatArray  # (rows, connectors), >= 0
    b: FloatArray  # (rows,)
    names: tuple[str, ...]  # row names, e.g. "service L1", "panel P2 L3", "plan ceiling"
    connectors: tuple[str, ...]  # connector keys, e.g. "CP001/1"

    def __post_init__(self) -> None:
        rows, cols = self.A.shape
        if self.b.shape != (rows,):
            raise AllocationInputError(f"b: expected shape ({rows},), got {self.b.shape}")
        if len(self.names) != rows:
            raise AllocationInputError(f"names: expected {rows} row names, got {len(self.names)}")
        if len(self.connectors) != cols:
            raise AllocationInputError(f"connectors: expected {cols} keys, got {len(self.connectors)}")
        if (self.A < 0).any() or not np.isfinite(self.A).all():
            raise AllocationInputError("A: coefficients must be finite and >= 0")

    @property
    def n_connectors(self) -> int:
        return self.A.shape[1]

    def with_row(self, name: str, coefficients: FloatArray, limit: float) -> Constraints:
        """A copy with one more row (e.g. the plan's kW ceiling, a temporary operator limit)."""
        return Constraints(
            A=np.vstack([self.A, np.asarray(coefficients, float)[None, :]]),
            b=np.append(self.b, float(limit)),
            names=(*self.names, name),
            connectors=self.connectors,
        )


def _arr(n: int, value: float) -> FloatArray:
    return np.full(n, value, dtype=float)


@dataclass
class Sessions:
    """One entry per connector (same order as ``Constraints.connectors``); ``active`` marks a car plugged in.

    - ``min_a`` / ``max_a``: usable current range (the charger's and the car's, the lower maximum wins).
    - ``kw_per_a``: kW one ampere per phase gives (phase voltage x phases / 1000): the real voltage, never 230.
    - ``energy_delivered_kwh``, ``energy_requested_kwh`` (NaN: unknown; the connector then wants ``max_a``).
    - ``arrival_s`` (<= 0: already here) and ``departure_s`` (NaN: unknown) relative to ``now``.
    - ``priority``: higher is served first by the priority policy (groups).
    - ``fixed_a``: a draw the allocator cannot change this round (charger offline, or not yet acknowledged
      its latest limit: it is assumed to draw its previous limit); NaN when the connector is controllable.
    - ``no_pause``: the car is known not to resume after a 0 A pause, so it gets at least ``min_a``.
    """

    active: BoolArray
    min_a: FloatArray
    max_a: FloatArray
    kw_per_a: FloatArray
    energy_delivered_kwh: FloatArray
    energy_requested_kwh: FloatArray
    arrival_s: FloatArray
    departure_s: FloatArray
    priority: IntArray
    fixed_a: FloatArray
    no_pause: BoolArray

    @classmethod
    def empty(cls, n: int, *, min_a: float = J1772_MIN_A, max_a: float = 32.0, kw_per_a: float = 0.208) -> Sessions:
        """``n`` connectors, none in use, with one electrical rating for all (a starting point for builders)."""
        return cls(
            active=np.zeros(n, bool),
            min_a=_arr(n, min_a),
            max_a=_arr(n, max_a),
            kw_per_a=_arr(n, kw_per_a),
            energy_delivered_kwh=np.zeros(n),
            energy_requested_kwh=_arr(n, np.nan),
            arrival_s=np.zeros(n),
            departure_s=_arr(n, np.nan),
            priority=np.zeros(n, np.int64),
            fixed_a=_arr(n, np.nan),
            no_pause=np.zeros(n, bool),
        )

    def __len__(self) -> int:
        return int(self.active.shape[0])

    def check(self, n: int) -> None:
        """Every array has ``n`` entries and the values make sense; raises ``AllocationInputError``."""
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value.shape != (n,):
                raise AllocationInputError(f"sessions.{name}: expected shape ({n},), got {value.shape}")
        if (self.min_a < 0).any() or (self.max_a < 0).any():
            raise AllocationInputError("sessions.min_a/max_a: currents must be >= 0")
        if (self.kw_per_a <= 0).any():
            raise AllocationInputError("sessions.kw_per_a: must be > 0 (phase voltage x phases / 1000)")

    @property
    def remaining_kwh(self) -> FloatArray:
        """Energy still wanted (NaN when the request is unknown)."""
        return np.maximum(self.energy_requested_kwh - self.energy_delivered_kwh, 0.0)


@dataclass
class Snapshot:
    """Everything one allocation needs: constraints, the uncontrolled load per row, sessions, the period."""

    constraints: Constraints
    sessions: Sessions
    #: load per row that is not under control (building load converted into the row's unit), >= 0 or any.
    uncontrolled: FloatArray = field(default_factory=lambda: np.zeros(0))
    period_s: float = 300.0

    def __post_init__(self) -> None:
        rows = self.constraints.A.shape[0]
        if self.uncontrolled.size == 0:
            self.uncontrolled = np.zeros(rows)
        if self.uncontrolled.shape != (rows,):
            raise AllocationInputError(f"uncontrolled: expected shape ({rows},), got {self.uncontrolled.shape}")
        if self.period_s <= 0:
            raise AllocationInputError(f"period_s: must be > 0, got {self.period_s}")
        self.sessions.check(self.constraints.n_connectors)


@dataclass
class Allocation:
    """A limit for every connector (A per phase; 0 = paused) and why, plus the row that bound it (-1: none)."""

    limit_a: FloatArray
    reasons: list[str]
    binding_row: IntArray
    policy: str

    def as_dict(self, connectors: tuple[str, ...]) -> dict[str, tuple[float, str]]:
        """``{connector key: (limit_a, reason)}`` for logs and the API."""
        return {key: (float(a), r) for key, a, r in zip(connectors, self.limit_a, self.reasons, strict=True)}
