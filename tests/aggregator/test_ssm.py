"""The state-space model: A estimation and online update, control law, capacity, boundary handling."""

from __future__ import annotations

import numpy as np
import pytest

from evsite.ev_fleet import CHARGING, DISCHARGING, IDLE, seed_fleet
from planning.ssm import (
    Availability,
    FleetPowers,
    StateSpaceModel,
    capacity_forecast,
    control,
    controlled_output_kw,
    effective_mode,
    fleet_powers,
    mode_outputs,
    output_kw,
    shares,
    soc_bin,
    state_index,
    transition_counts,
)
from planning.ssm_estimate import collect_transitions, estimate_model

NS = 4
P = FleetPowers(6.0, 5.0)


def test_state_index_and_shares() -> None:
    mode = np.array([CHARGING, IDLE, DISCHARGING, CHARGING, CHARGING], dtype=np.int8)
    soc = np.array([0.0, 0.3, 0.99, 1.0, 0.5])
    np.testing.assert_array_equal(soc_bin(soc, NS), [0, 1, 3, 3, 2])
    st = state_index(mode, soc, NS)
    np.testing.assert_array_equal(st, [0, 5, 11, 3, 2])
    x, ne = shares(st, np.array([True, True, True, True, False]), NS)
    assert ne == 4 and x.sum() == pytest.approx(1.0) and x[3] == 0.25 and x[2] == 0.0


def test_fit_normalises_columns_and_keeps_unobserved_states() -> None:
    prev = np.array([0, 0, 0, 1])
    nxt = np.array([0, 1, 1, 1])
    counts = transition_counts(prev, nxt, np.ones(4, dtype=bool), NS)
    m = StateSpaceModel(NS).fit(counts)
    assert m.A_[0, 0] == pytest.approx(1 / 3) and m.A_[1, 0] == pytest.approx(2 / 3)
    assert m.A_[1, 1] == 1.0
    np.testing.assert_allclose(m.A_.sum(axis=0), 1.0)
    np.testing.assert_array_equal(m.A_[:, 5], np.eye(3 * NS)[:, 5])  # never observed: stays put


@pytest.mark.parametrize("lr", [0.1, 0.3, 0.5])
def test_partial_fit_moves_a_by_the_learning_rate(lr: float) -> None:
    """The seed's factor int(lr / (1 - lr)) was 0 for lr < 0.5: its A never moved."""
    m = StateSpaceModel(NS, learning_rate=lr)
    stay = transition_counts(np.array([0]), np.array([0]), np.array([True]), NS)
    move = transition_counts(np.array([0]), np.array([1]), np.array([True]), NS)
    m.partial_fit(stay)  # first observation of the column: taken as is
    assert m.A_[0, 0] == 1.0
    m.partial_fit(move)
    assert m.A_[0, 0] == pytest.approx(1 - lr) and m.A_[1, 0] == pytest.approx(lr)
    np.testing.assert_allclose(m.A_.sum(axis=0), 1.0)


def test_save_and_load_round_trip(tmp_path) -> None:
    m = StateSpaceModel(NS, 0.2).fit(transition_counts(np.array([0, 2]), np.array([1, 2]), np.ones(2, bool), NS))
    m.save(tmp_path / "a.npz")
    back = StateSpaceModel.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.A_, m.A_)
    assert back.learning_rate == 0.2 and back.ns == NS and back.observed_[0]
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a saved state-space model"):
        StateSpaceModel.load(tmp_path / "bad.npz")


def test_test_mode_estimate_covers_all_states_and_describes_one_step() -> None:
    """The seed advanced SoC twice per test-mode step (A for 8 s). Here the drift per 4 s step matches physics."""
    f = seed_fleet(4000, 2)
    ns = 20
    counts = collect_transitions(f, ns=ns, duration_s=3600, dt_s=4.0, seed=3)
    assert np.all(counts.sum(axis=0) > 0)  # every (mode, SoC bin) observed
    cs = np.arange(2, 18)
    moved_up = counts[cs + 1, cs].sum() / counts[:, cs].sum()
    # expected probability to cross into the next bin in one step: mean dSoC per step / bin width
    dsoc = (4.0 / 3600 * f.p_charge_kw * f.efficiency / f.capacity_kwh).mean()
    assert moved_up == pytest.approx(dsoc / (1 / ns), rel=0.1)
    ds = np.arange(2 * ns + 2, 2 * ns + 18)
    moved_down = counts[ds - 1, ds].sum() / counts[:, ds].sum()
    dsoc_dis = (4.0 / 3600 * f.p_discharge_kw / (f.efficiency * f.capacity_kwh)).mean()
    assert moved_down == pytest.approx(dsoc_dis / (1 / ns), rel=0.1)
    assert np.all(f.soc <= 0.4)  # the caller's fleet is untouched


@pytest.mark.parametrize(
    ("commanded", "soc", "boundary", "expected"),
    [
        (CHARGING, 0.999, True, IDLE),
        (CHARGING, 0.999, False, CHARGING),
        (DISCHARGING, 0.001, True, IDLE),
        (DISCHARGING, 0.5, True, DISCHARGING),
        (CHARGING, 0.5, True, CHARGING),
    ],
)
def test_effective_mode(commanded: int, soc: float, boundary: bool, expected: int) -> None:
    assert effective_mode(np.array([commanded], np.int8), np.array([soc]), boundary)[0] == expected


def _avail(cs, is_dis, ds, is_ch, frac=None) -> Availability:
    z = np.zeros(NS)
    return Availability(np.asarray(cs, float), np.asarray(is_dis, float), z if frac is None else frac,
                        np.asarray(ds, float), np.asarray(is_ch, float))  # fmt: skip


@pytest.mark.parametrize(
    ("delta_kw", "u", "v"),
    [
        # up, fits in CS -> IS of the top bins: 100 EVs x 6 kW x 0.1 = 60 kW from bin 3 then bin 2
        (60.0, [0, 0, 0.05, 0.05], [0, 0, 0, 0]),
        # up beyond all CS (0.2 x 100 x 6 = 120 kW): the rest from IS -> DS, highest SoC first (5 kW each)
        (120.0 + 25.0, [0.05, 0.05, 0.05, 0.05], [0, 0, 0, 0.05]),
        # up far beyond everything: clipped to what is available (no share above x)
        (1e6, [0.05, 0.05, 0.05, 0.05], [0.1, 0.1, 0.1, 0.1]),
        # down: DS -> IS first from the lowest SoC (5 kW each), then IS -> CS
        (-10.0, [0, 0, 0, 0], [-0.02, 0, 0, 0]),
        (-(0.1 * 100 * 5) - 30.0, [-0.05, 0, 0, 0], [-0.025] * 4),
        (-1e6, [-0.05, -0.05, -0.05, -0.05], [-0.025] * 4),
        (0.0, [0] * 4, [0] * 4),
    ],
)
def test_control_law(delta_kw: float, u: list[float], v: list[float]) -> None:
    av = _avail([0.05] * 4, [0.1] * 4, [0.025] * 4, [0.05] * 4)
    got_u, got_v = control(delta_kw, av, 100, P)
    np.testing.assert_allclose(got_u, u, atol=1e-12)
    np.testing.assert_allclose(got_v, v, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_control_achieves_the_request_or_the_available_limit(seed: int) -> None:
    x = np.random.default_rng(seed).dirichlet(np.ones(3 * NS))
    av = Availability(x[:NS], x[NS : 2 * NS], np.ones(NS), x[2 * NS :], x[NS : 2 * NS] + x[2 * NS :])
    up, down = av.up_kw(100, P), av.down_kw(100, P)
    for delta in (-1000.0, -300.0, -50.0, 40.0, 250.0, 1000.0):
        u, v = control(delta, av, 100, P)
        cs, is_, ds = x[:NS], x[NS : 2 * NS], x[2 * NS :]
        assert np.all((u <= cs + 1e-12) & (u >= -(is_ + ds) - 1e-12))  # never more than is there
        assert np.all((v <= is_ + cs + 1e-12) & (v >= -ds - 1e-12))
        got = controlled_output_kw(x, u, v, 100, P) - output_kw(x, 100, P)
        assert got == pytest.approx(float(np.clip(delta, -down, up)), rel=1e-9, abs=1e-9)


def test_mode_outputs_and_capacity_forecast() -> None:
    x = np.zeros(3 * NS)
    x[:NS] = 0.15  # 60 % charging
    x[NS : 2 * NS] = 0.1  # 40 % idle
    out = mode_outputs(x, 100, P)
    assert out["y_a"] == pytest.approx(100 * 0.6 * 6) and out["P_l"] == pytest.approx(-600)
    m = StateSpaceModel(NS)  # identity A
    av = Availability(x[:NS], x[NS : 2 * NS], np.ones(NS), x[2 * NS :], x[NS : 2 * NS])
    up, down = capacity_forecast(m, x, av, 100, P, horizon_steps=75)
    assert up == pytest.approx(0.6 * 100 * 6 + (0.4 + 0.6) * 100 * 5)
    assert down == pytest.approx(0.4 * 100 * 6)
    up2, _ = capacity_forecast(m, x, av, 50, P, horizon_steps=75)  # half the cars leave before the horizon
    assert up2 == pytest.approx(up / 2)


def test_fleet_powers_is_the_plain_mean() -> None:
    """The seed's kernel-density Pave undershot (5.61 kW for a 6.00 kW mean)."""
    f = seed_fleet(50_000, 0)
    p = fleet_powers(f.p_charge_kw, f.p_discharge_kw, np.ones(len(f), dtype=bool))
    assert p.charge_kw == pytest.approx(f.p_charge_kw.mean()) and p.charge_kw == pytest.approx(6.0, abs=0.02)


def test_estimate_model_columns_sum_to_one() -> None:
    m = estimate_model(seed_fleet(500, 0), ns=10, duration_s=400)
    np.testing.assert_allclose(m.A_.sum(axis=0), 1.0)
    assert m.observed_.all()


def test_capacity_forecast_keeps_availability_when_cars_drift_into_empty_bins() -> None:
    """Regression: per-bin ratios made capacity vanish when A moved cars into a bin that is empty now."""
    m = StateSpaceModel(NS)
    shift = np.eye(3 * NS)
    shift[:, 1] = 0.0
    shift[2, 1] = 1.0  # CS bin 1 -> CS bin 2 in one step
    m.A_ = shift
    x = np.zeros(3 * NS)
    x[1] = 1.0  # every car charging in bin 1
    frac = np.zeros(NS)
    frac[1] = 0.5  # half of them may discharge
    av = Availability(x[:NS].copy(), np.zeros(NS), frac, np.zeros(NS), np.zeros(NS))
    up, down = capacity_forecast(m, x, av, 10, P, horizon_steps=1)
    assert up == pytest.approx(10 * (6.0 + 0.5 * 5.0)) and down == 0.0
