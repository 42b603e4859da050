"""``allocate(snapshot, policy)``: a limit for every connector at once, and the reason for each.

Why all connectors at once: two chargers that each see the same spare 20 A and each take it overload the
site (evcc grants headroom per loadpoint in turn; we do not). Every policy here works on the remaining
headroom of every row of ``A @ x <= b`` and subtracts what it grants before granting the next ampere.

The steps every policy shares:

1. *Fixed draws first.* A connector whose charger is offline or has not acknowledged its latest limit is
   assumed to draw ``fixed_a`` (its previous limit or its fail-safe); that comes off every row's headroom
   with the building load before anything is granted.
2. *Upper bound.* A car wants ``max_a`` unless its remaining energy (when known) is delivered sooner at a
   lower current within ``period_s``; a car whose request is met wants nothing.
3. *Admission at the minimum.* Below the J1772 minimum (6 A) a car cannot charge, so a connector either gets
   at least ``min_a`` or is paused at 0 A. Cars are admitted at ``min_a`` one by one in the policy's order
   (cars known not to resume after a pause first) while every row still has room; the rest are paused,
   with the row that had no room named in the reason.
4. *Filling.* What is left is shared out by the policy: ``equal`` raises every admitted car together
   (water filling) until its upper bound or a row binds; ``priority`` does the same one priority group at
   a time, highest first; ``edf`` (earliest deadline first) and ``llf`` (least laxity first) give each car
   in their order as much as it can take before the next.

The deadline-aware optimiser lives in its own module (it looks ahead over the sessions' stays) and uses the
same steps 1-3.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from planning.allocation import mpc
from planning.allocation.model import Allocation, BoolArray, FloatArray, IntArray, Snapshot

#: Relative tolerance on row headroom: a row within this of its limit counts as binding.
_EPS = 1e-9


def upper_bound_a(snapshot: Snapshot) -> FloatArray:
    """The current each controllable car wants this period (0 for idle, fixed or satisfied connectors)."""
    s = snapshot.sessions
    controllable = s.active & np.isnan(s.fixed_a)
    hours = snapshot.period_s / 3600.0
    with np.errstate(invalid="ignore", divide="ignore"):
        need_a = s.remaining_kwh / (hours * s.kw_per_a)
    upper = np.where(np.isnan(need_a), s.max_a, np.minimum(s.max_a, need_a))
    # A car that still wants a little cannot take less than the minimum: it gets the minimum and finishes early.
    upper = np.where(upper > 1e-6, np.maximum(upper, np.minimum(s.min_a, s.max_a)), 0.0)
    return np.where(controllable, upper, 0.0)


def headroom(snapshot: Snapshot) -> FloatArray:
    """Room left in every row after the uncontrolled load and the fixed draws."""
    s = snapshot.sessions
    c = snapshot.constraints
    fixed = np.nan_to_num(s.fixed_a, nan=0.0)
    return c.b - snapshot.uncontrolled - c.A @ fixed


def laxity_s(snapshot: Snapshot) -> FloatArray:
    """Seconds a car can wait and still get its request at full current (inf when departure or energy is unknown)."""
    s = snapshot.sessions
    with np.errstate(invalid="ignore", divide="ignore"):
        charge_s = s.remaining_kwh / (s.max_a * s.kw_per_a) * 3600.0
        lax = s.departure_s - charge_s
    return np.where(np.isnan(lax), np.inf, lax)


def admit(
    snapshot: Snapshot, room: FloatArray, order: IntArray, upper: FloatArray
) -> tuple[FloatArray, FloatArray, IntArray, BoolArray]:
    """Admit cars at their minimum in ``order`` while every row has room.

    Returns the currents granted (``min_a`` or 0), the room left, for each refused car the row that had
    no room (-1 for the others), and which cars were admitted (a car with ``min_a = 0``, as ACN-Sim's
    continuous EVSEs, is admitted at 0 A and may still be raised).
    """
    s = snapshot.sessions
    A = snapshot.constraints.A
    n = A.shape[1]
    x = np.zeros(n)
    refused_by = np.full(n, -1, dtype=np.int64)
    admitted = np.zeros(n, dtype=bool)
    room = room.copy()
    tol = _EPS * np.maximum(np.abs(snapshot.constraints.b), 1.0)
    wanting = order[upper[order] > 0]
    forced_first = np.concatenate([wanting[s.no_pause[wanting]], wanting[~s.no_pause[wanting]]])
    for i in forced_first:
        take = A[:, i] * s.min_a[i]
        short = take > room + tol
        if short.any():
            refused_by[i] = int(np.argmax(short))
            continue
        x[i] = s.min_a[i]
        admitted[i] = True
        room -= take
    return x, room, refused_by, admitted


def water_fill(
    snapshot: Snapshot, x: FloatArray, room: FloatArray, upper: FloatArray, members: np.ndarray
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Raise every member together until it reaches ``upper`` or a row it counts in binds.

    Returns the new currents, the room left and, per connector, the row that stopped it (-1: its bound did).
    """
    A = snapshot.constraints.A
    x = x.copy()
    room = room.copy()
    bound_by = np.full(x.shape[0], -1, dtype=np.int64)
    tol = _EPS * np.maximum(np.abs(snapshot.constraints.b), 1.0)
    free = members & (x < upper - 1e-9)
    # Rows already full stop their members before any raise.
    for _ in range(x.shape[0] + A.shape[0] + 1):
        if not free.any():
            break
        rate = A[:, free].sum(axis=1)
        counting = rate > 0
        step_rows = np.where(counting, np.maximum(room, 0.0) / np.where(counting, rate, 1.0), np.inf)
        step = min(float(step_rows.min(initial=np.inf)), float((upper - x)[free].min()))
        step = max(step, 0.0)
        x[free] += step
        room -= rate * step
        tight = counting & (room <= tol)
        at_bound = free & (x >= upper - 1e-9)
        if tight.any():
            touches = A[tight][:, free] > 0
            blocked_idx = np.flatnonzero(free)[touches.any(axis=0)]
            first_row = np.flatnonzero(tight)[np.argmax(touches[:, touches.any(axis=0)], axis=0)]
            bound_by[blocked_idx] = first_row
            free[blocked_idx] = False
        free &= ~at_bound
    return x, room, bound_by


def greedy_fill(
    snapshot: Snapshot, x: FloatArray, room: FloatArray, upper: FloatArray, order: IntArray, admitted: BoolArray
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Give each admitted car in ``order`` as much as it can take (up to ``upper``) before the next."""
    A = snapshot.constraints.A
    x = x.copy()
    room = room.copy()
    bound_by = np.full(x.shape[0], -1, dtype=np.int64)
    for i in order:
        if not admitted[i]:
            continue
        col = A[:, i]
        counting = col > 0
        per_row = np.where(counting, np.maximum(room, 0.0) / np.where(counting, col, 1.0), np.inf)
        row = int(np.argmin(per_row))
        extra = min(upper[i] - x[i], float(per_row[row]))
        extra = max(extra, 0.0)
        if per_row[row] < upper[i] - x[i]:
            bound_by[i] = row
        x[i] += extra
        room -= col * extra
    return x, room, bound_by


def _order_arrival(snapshot: Snapshot) -> IntArray:
    s = snapshot.sessions
    return np.lexsort((np.arange(len(s)), s.arrival_s, -s.priority)).astype(np.int64)


def _order_deadline(snapshot: Snapshot) -> IntArray:
    s = snapshot.sessions
    dep = np.where(np.isnan(s.departure_s), np.inf, s.departure_s)
    return np.lexsort((np.arange(len(s)), s.arrival_s, dep)).astype(np.int64)


def _order_laxity(snapshot: Snapshot) -> IntArray:
    s = snapshot.sessions
    return np.lexsort((np.arange(len(s)), s.arrival_s, laxity_s(snapshot))).astype(np.int64)


def _equal(snapshot: Snapshot, x: FloatArray, room: FloatArray, upper: FloatArray, order: IntArray, admitted):
    return water_fill(snapshot, x, room, upper, admitted)


def _priority(snapshot: Snapshot, x: FloatArray, room: FloatArray, upper: FloatArray, order: IntArray, admitted):
    prio = snapshot.sessions.priority
    bound_by = np.full(x.shape[0], -1, dtype=np.int64)
    for group in np.unique(prio[admitted])[::-1]:
        members = admitted & (prio == group)
        x, room, group_bound = water_fill(snapshot, x, room, upper, members)
        bound_by[members] = group_bound[members]
    return x, room, bound_by


def _sorted(snapshot: Snapshot, x: FloatArray, room: FloatArray, upper: FloatArray, order: IntArray, admitted):
    return greedy_fill(snapshot, x, room, upper, order, admitted)


#: (snapshot, currents after admission, room left, upper bounds, policy order, admitted) -> (x, room, bound_by)
Fill = Callable[
    [Snapshot, FloatArray, FloatArray, FloatArray, IntArray, BoolArray], tuple[FloatArray, FloatArray, IntArray]
]


def _mpc(snapshot: Snapshot, x: FloatArray, room: FloatArray, upper: FloatArray, order: IntArray, admitted):
    try:
        planned, room_left, bound_by = mpc.plan(snapshot, x, room, upper, order, admitted)
    except RuntimeError:
        # HiGHS failing on a feasible LP is a solver fault, not the site's: least laxity first still serves.
        return greedy_fill(snapshot, x, room, upper, order, admitted)
    # Cars with no known request are interchangeable to the LP (it would hand one all and another nothing):
    # they share equally the room the plan leaves after the cars with known requests.
    unknown = admitted & np.isnan(snapshot.sessions.energy_requested_kwh)
    if unknown.sum() > 1:
        A = snapshot.constraints.A
        room_left = room_left + A[:, unknown] @ (planned[unknown] - x[unknown])
        planned = np.where(unknown, x, planned)
        planned, room_left, shared_by = water_fill(snapshot, planned, room_left, upper, unknown)
        bound_by = np.where(unknown, shared_by, bound_by)
    return planned, room_left, bound_by


#: policy name -> (admission order, filling rule, what the reason calls it)
POLICIES: dict[str, tuple[Callable[[Snapshot], IntArray], Fill, str]] = {
    "equal": (_order_arrival, _equal, "equal share"),
    "priority": (_order_arrival, _priority, "priority group"),
    "edf": (_order_deadline, _sorted, "earliest deadline first"),
    "llf": (_order_laxity, _sorted, "least laxity first"),
    "mpc": (_order_laxity, _mpc, "deadline-aware optimiser"),
}

#: Policies that choose which cars to pause this period themselves, before admission at the minimum.
CHOOSES_PAUSES: dict[str, Callable[[Snapshot, FloatArray, FloatArray], BoolArray]] = {"mpc": mpc.choose_paused}


def explain(
    snapshot: Snapshot,
    limit_a: FloatArray,
    upper: FloatArray,
    refused_by: IntArray,
    bound_by: IntArray,
    label: str,
) -> list[str]:
    """One sentence per connector saying why it got its limit (logged with every limit sent)."""
    s = snapshot.sessions
    names = snapshot.constraints.names
    reasons: list[str] = []
    for i in range(len(s)):
        if not np.isnan(s.fixed_a[i]):
            reasons.append(f"assumed drawing its last limit {s.fixed_a[i]:.1f} A (offline or not acknowledged)")
        elif not s.active[i]:
            reasons.append("no car: 0 A")
        elif upper[i] <= 0:
            reasons.append("requested energy delivered: 0 A")
        elif refused_by[i] == mpc.DEFERRED:
            reasons.append(f"{label}: paused this period, its plan charges it later before its departure")
        elif refused_by[i] >= 0 or (limit_a[i] <= 0 and bound_by[i] == -1):
            row = names[refused_by[i]] if refused_by[i] >= 0 else "the site"
            reasons.append(f"paused: no room for the {s.min_a[i]:.0f} A minimum under {row}")
        elif bound_by[i] == mpc.DEFERRED:
            reasons.append(f"{label}: {limit_a[i]:.1f} A now, the rest planned later before its departure")
        elif bound_by[i] >= 0:
            reasons.append(f"{label}: {limit_a[i]:.1f} A, bound by {names[bound_by[i]]}")
        elif limit_a[i] >= s.max_a[i] - 0.05:
            reasons.append(f"{label}: connector maximum {s.max_a[i]:.1f} A")
        else:
            reasons.append(f"{label}: {limit_a[i]:.1f} A is what its remaining energy needs this period")
    return reasons


def allocate(snapshot: Snapshot, policy: str = "equal", resolution_a: float = 0.1) -> Allocation:
    """A limit for every connector under ``policy`` (``equal``, ``priority``, ``edf``, ``llf``).

    Limits are rounded *down* to ``resolution_a`` (what chargers accept), so rounding never overshoots a row.
    A connector that is not active gets 0 A; a fixed one keeps ``fixed_a``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown allocation policy {policy!r} (expected one of {', '.join(POLICIES)})")
    order_of, fill, label = POLICIES[policy]
    upper = upper_bound_a(snapshot)
    order = order_of(snapshot)
    room = headroom(snapshot)
    chosen = CHOOSES_PAUSES[policy](snapshot, upper, room) if policy in CHOOSES_PAUSES else np.zeros(len(upper), bool)
    x, room, refused_by, admitted = admit(snapshot, room, order, np.where(chosen, 0.0, upper))
    refused_by[chosen] = mpc.DEFERRED
    x, _, bound_by = fill(snapshot, x, room, upper, order, admitted)
    return finish(snapshot, x, upper, refused_by, bound_by, policy, label, resolution_a, order)


def _hand_back(snapshot: Snapshot, x: FloatArray, exact: FloatArray, step: float, order: IntArray) -> FloatArray:
    """Give one ``step`` back to cars rounded down, in ``order``, while every row they count in has room."""
    A = snapshot.constraints.A
    room = headroom(snapshot) - A @ x
    tol = _EPS * np.maximum(np.abs(snapshot.constraints.b), 1.0)
    x = x.copy()
    for i in order:
        if exact[i] - x[i] > 1e-9 and x[i] > 0 and (A[:, i] * step <= room + tol).all():
            x[i] += step
            room -= A[:, i] * step
    return x


def finish(
    snapshot: Snapshot,
    x: FloatArray,
    upper: FloatArray,
    refused_by: IntArray,
    bound_by: IntArray,
    policy: str,
    label: str,
    resolution_a: float = 0.1,
    order: IntArray | None = None,
) -> Allocation:
    """Round down, hand back whole steps the rounding freed, put the fixed draws back, attach the reasons.

    Rounding every car down to ``resolution_a`` can leave up to one step per car unused under a binding row
    (a whole ampere with ten cars); those steps go back, one per car in the policy's ``order``, to cars that
    were rounded down, wherever every row they count in still has room for the step.
    """
    s = snapshot.sessions
    if resolution_a > 0:
        exact = x
        x = np.floor(x / resolution_a + 1e-9) * resolution_a
        if order is not None:
            x = _hand_back(snapshot, x, exact, resolution_a, order)
    fixed = ~np.isnan(s.fixed_a)
    limit = np.where(fixed, s.fixed_a, x)
    reasons = explain(snapshot, limit, upper, refused_by, bound_by, label)
    return Allocation(limit_a=limit, reasons=reasons, binding_row=bound_by, policy=policy)
