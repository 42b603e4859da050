"""The allocation core on hand-checkable sites: every policy, the minimum-current rule, fixed draws, reasons."""

from __future__ import annotations

import numpy as np
import pytest

from planning.allocation import AllocationInputError, Constraints, Sessions, Snapshot, allocate


def one_row(n: int, limit_a: float) -> Constraints:
    return Constraints(
        A=np.ones((1, n)), b=np.array([limit_a]), names=("service L1",), connectors=tuple(f"CP{i}/1" for i in range(n))
    )


def cars(n: int, **overrides) -> Sessions:
    s = Sessions.empty(n)
    s.active[:] = True
    for key, value in overrides.items():
        getattr(s, key)[:] = value
    return s


@pytest.mark.parametrize(
    ("n", "limit_a", "expected"),
    [
        (4, 128.0, [32, 32, 32, 32]),  # room for all at maximum
        (4, 100.0, [25, 25, 25, 25]),  # equal share
        (4, 30.0, [7.5, 7.5, 7.5, 7.5]),  # all four fit at 6 A, then share the rest equally
        (4, 13.0, [6.5, 6.5, 0, 0]),  # only two fit at 6 A: the last two arrivals are paused
        (4, 5.0, [0, 0, 0, 0]),  # not even one minimum: all paused
    ],
)
def test_equal_share_on_one_row(n: int, limit_a: float, expected: list[float]) -> None:
    s = cars(n, arrival_s=np.arange(n))  # CP0 arrived first and is the last to be paused
    alloc = allocate(Snapshot(one_row(n, limit_a), s), "equal")
    np.testing.assert_allclose(alloc.limit_a, expected)
    assert alloc.limit_a.sum() <= limit_a + 1e-9


def test_building_load_and_fixed_draws_come_off_first() -> None:
    s = cars(3)
    s.fixed_a[2] = 16.0  # offline, assumed at its last limit
    snap = Snapshot(one_row(3, 100.0), s, uncontrolled=np.array([40.0]))
    alloc = allocate(snap, "equal")
    np.testing.assert_allclose(alloc.limit_a, [22.0, 22.0, 16.0])
    assert "offline or not acknowledged" in alloc.reasons[2]
    assert "bound by service L1" in alloc.reasons[0]


def test_building_over_the_limit_pauses_everyone() -> None:
    alloc = allocate(Snapshot(one_row(2, 100.0), cars(2), uncontrolled=np.array([120.0])), "equal")
    np.testing.assert_allclose(alloc.limit_a, [0, 0])
    assert all(r.startswith("paused: no room for the 6 A minimum under service L1") for r in alloc.reasons)


def test_idle_and_satisfied_connectors_get_zero_with_their_reason() -> None:
    s = cars(3, energy_requested_kwh=10.0)
    s.active[0] = False
    s.energy_delivered_kwh[1] = 10.0
    alloc = allocate(Snapshot(one_row(3, 100.0), s), "equal")
    np.testing.assert_allclose(alloc.limit_a[:2], [0, 0])
    assert alloc.reasons[0] == "no car: 0 A"
    assert alloc.reasons[1] == "requested energy delivered: 0 A"
    assert alloc.limit_a[2] == pytest.approx(32.0)


def test_a_car_needing_little_gets_what_it_needs_and_the_rest_goes_to_others() -> None:
    s = cars(2, kw_per_a=0.23, energy_requested_kwh=np.nan)
    s.energy_requested_kwh[0] = 0.23 * 10 * (300 / 3600)  # 10 A for one 5-minute period
    alloc = allocate(Snapshot(one_row(2, 40.0), s, period_s=300), "equal")
    np.testing.assert_allclose(alloc.limit_a, [10.0, 30.0])
    assert "remaining energy needs" in alloc.reasons[0]


def test_per_phase_tree_rows() -> None:
    # Three single-phase connectors on L1, L2, L1 and a three-phase one; a panel limits L1 to 40 A.
    A = np.array(
        [
            [1, 0, 1, 1],  # service L1
            [0, 1, 0, 1],  # service L2
            [0, 0, 0, 1],  # service L3
            [1, 0, 1, 0],  # panel P1 L1 (the two single-phase L1 chargers)
        ],
        float,
    )
    c = Constraints(
        A, np.array([100.0, 100.0, 100.0, 40.0]), ("svc L1", "svc L2", "svc L3", "P1 L1"), ("a", "b", "c", "d")
    )
    alloc = allocate(Snapshot(c, cars(4)), "equal")
    x = alloc.limit_a
    assert (A @ x <= c.b + 1e-9).all()
    np.testing.assert_allclose(x, [20, 32, 20, 32])
    assert "bound by P1 L1" in alloc.reasons[0]


def test_plan_ceiling_row_in_kw() -> None:
    s = cars(2, kw_per_a=np.array([0.69, 0.23]))  # 3-phase 230 V and single-phase 230 V
    c = one_row(2, 1000.0).with_row("plan ceiling", s.kw_per_a, 9.2)
    alloc = allocate(Snapshot(c, s), "equal")
    assert float(s.kw_per_a @ alloc.limit_a) <= 9.2 + 1e-9
    np.testing.assert_allclose(alloc.limit_a, [10.0, 10.0])


def test_priority_groups_fill_highest_first() -> None:
    s = cars(3, priority=np.array([0, 1, 1]))
    alloc = allocate(Snapshot(one_row(3, 50.0), s), "priority")
    np.testing.assert_allclose(alloc.limit_a, [6.0, 22.0, 22.0])


def test_edf_and_llf_serve_in_their_order() -> None:
    s = cars(3, kw_per_a=0.2, energy_requested_kwh=np.array([30.0, 5.0, 20.0]))
    s.departure_s[:] = [4 * 3600, 2 * 3600, 8 * 3600]
    snap = Snapshot(one_row(3, 50.0), s)
    edf = allocate(snap, "edf").limit_a
    np.testing.assert_allclose(edf, [12.0, 32.0, 6.0])  # admitted at 6 A each, then CP1 (leaves first), CP0
    # laxity: CP0 4h - 30/6.4h = -0.69 h, CP1 2h - 0.78h, CP2 8h - 3.1h: CP0 first
    llf = allocate(snap, "llf").limit_a
    np.testing.assert_allclose(llf, [32.0, 12.0, 6.0])
    assert llf.sum() <= 50.0


def test_no_pause_cars_are_admitted_first() -> None:
    s = cars(3, no_pause=np.array([False, False, True]))
    s.arrival_s[:] = [0, 1, 2]
    alloc = allocate(Snapshot(one_row(3, 13.0), s), "equal")
    assert alloc.limit_a[2] >= 6.0
    assert (alloc.limit_a > 0).sum() == 2


@pytest.mark.parametrize("policy", ["equal", "priority", "edf", "llf", "mpc"])
def test_random_sites_never_exceed_a_row(policy: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        n, rows = int(rng.integers(1, 40)), int(rng.integers(1, 6))
        A = (rng.random((rows, n)) < 0.6).astype(float)
        b = rng.uniform(0, 200, rows)
        s = Sessions.empty(n)
        s.active[:] = rng.random(n) < 0.8
        s.fixed_a[rng.random(n) < 0.1] = 0.0
        s.energy_requested_kwh[:] = np.where(rng.random(n) < 0.5, rng.uniform(0, 40, n), np.nan)
        s.departure_s[:] = rng.uniform(600, 36000, n)
        s.priority[:] = rng.integers(0, 3, n)
        load = rng.uniform(0, 50, rows)
        alloc = allocate(
            Snapshot(Constraints(A, b, tuple(map(str, range(rows))), tuple(map(str, range(n)))), s, uncontrolled=load),
            policy,
        )
        x = alloc.limit_a
        room = b - load
        over = A @ x - np.maximum(room, 0)
        assert (over <= 1e-6).all()
        on = x > 0
        assert (x[on & np.isnan(s.fixed_a)] >= 6.0 - 1e-9).all()
        assert len(alloc.reasons) == n


def test_bad_shapes_name_the_field() -> None:
    with pytest.raises(AllocationInputError, match=r"sessions\.max_a"):
        s = cars(3)
        s.max_a = np.ones(2)
        allocate(Snapshot(one_row(3, 10.0), s))
    with pytest.raises(ValueError, match="unknown allocation policy"):
        allocate(Snapshot(one_row(1, 10.0), cars(1)), "fastest")


def run_to_departure(policy: str, requested: list[float], limit_a: float) -> np.ndarray:
    """Step 5-minute snapshots until every car leaves at 1 h; the energy each got."""
    s = cars(len(requested), kw_per_a=0.208, min_a=0.0, energy_requested_kwh=np.array(requested))
    for k in range(12):
        s.departure_s[:] = 3600.0 - 300.0 * k
        alloc = allocate(Snapshot(one_row(len(requested), limit_a), s, period_s=300), policy)
        assert alloc.limit_a.sum() <= limit_a + 1e-9
        s.energy_delivered_kwh += np.minimum(alloc.limit_a * 0.208 / 12, s.remaining_kwh)
    return s.energy_delivered_kwh


def test_mpc_finishes_a_car_llf_would_leave_short() -> None:
    # 20 A for one hour. CP0 wants 2.08 kWh (10 A for 1 h), CP1 6.24 kWh (30 A for 1 h): both cannot be served.
    # LLF serves CP1 (least laxity) throughout and leaves both short; the horizon LP finishes CP0 and gives
    # CP1 the rest: the same energy, one more car served.
    llf = run_to_departure("llf", [2.08, 6.24], 20.0)
    mpc = run_to_departure("mpc", [2.08, 6.24], 20.0)
    assert llf.sum() == pytest.approx(4.16) and llf[0] < 2.0
    assert mpc.sum() == pytest.approx(4.16, abs=0.01)
    assert mpc[0] == pytest.approx(2.08, abs=0.01)


def test_mpc_reason_names_the_binding_row_or_the_deferral() -> None:
    s = cars(2, kw_per_a=0.208, energy_requested_kwh=np.array([5.0, 5.0]))
    s.departure_s[:] = [3600.0, 8 * 3600.0]
    alloc = allocate(Snapshot(one_row(2, 32.0), s, period_s=300), "mpc")
    # CP0 must charge at full current to make its departure in 1 h; CP1 has 8 h, so the plan pauses it now
    # rather than admit it at 6 A and take that from CP0.
    np.testing.assert_allclose(alloc.limit_a, [32.0, 0.0])
    assert alloc.reasons[0] == "deadline-aware optimiser: connector maximum 32.0 A"
    assert (
        alloc.reasons[1]
        == "deadline-aware optimiser: paused this period, its plan charges it later before its departure"
    )
    assert allocate(Snapshot(one_row(2, 32.0), s, period_s=300), "llf").limit_a[1] == 6.0  # LLF admits it at 6 A


def test_mpc_defers_a_car_with_time_to_spare_to_one_leaving_soon() -> None:
    # 32 A for both: CP0 leaves in 30 min and wants 3.2 kWh (~30.8 A for 30 min), CP1 stays 8 h and wants 10 kWh.
    s = cars(2, kw_per_a=0.208, energy_requested_kwh=np.array([3.2, 10.0]))
    s.departure_s[:] = [1800.0, 8 * 3600.0]
    alloc = allocate(Snapshot(one_row(2, 32.0), s, period_s=300), "mpc")
    assert alloc.limit_a[0] >= 30.0
    assert alloc.limit_a.sum() <= 32.0 + 1e-9


def test_mpc_plans_cars_with_unknown_departure_and_energy() -> None:
    s = cars(3)  # no departure, no request: everybody wants as much as possible
    alloc = allocate(Snapshot(one_row(3, 60.0), s), "mpc")
    assert alloc.limit_a.sum() == pytest.approx(60.0)
    assert (alloc.limit_a >= 6.0).all()


def test_mpc_never_pauses_a_car_that_would_not_resume() -> None:
    # CP1 has 8 h to spare, so the plan would pause it now for CP0; but it is known not to resume after a pause.
    s = cars(2, kw_per_a=0.208, energy_requested_kwh=np.array([5.0, 5.0]), no_pause=np.array([False, True]))
    s.departure_s[:] = [3600.0, 8 * 3600.0]
    alloc = allocate(Snapshot(one_row(2, 32.0), s, period_s=300), "mpc")
    np.testing.assert_allclose(alloc.limit_a, [26.0, 6.0])
