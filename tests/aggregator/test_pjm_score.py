"""PJM performance score against hand-computed cases: zero, constant, pure delays 0-5 min, a first-order lag,
quantisation; 5-minute windows, delay chosen by correlation + delay, precision at the native 2 s."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planning.pjm_score import PASS_MARK, hourly_scores, resample_mean, score, score_hourly

HOUR = 1800  # 2 s samples per hour
T = np.arange(HOUR) * 2.0


@pytest.fixture(scope="module")
def regd(shared_data) -> np.ndarray:
    """Two hours of the real RegD signal at its native 2 s."""
    import pandas as pd

    s = pd.read_csv(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv", nrows=1800 * 12)["regd"]
    return s.to_numpy()[9 * HOUR : 11 * HOUR]


def test_perfect_response_scores_one(regd: np.ndarray) -> None:
    s = score(regd[:HOUR], regd[:HOUR])
    assert (s.accuracy, s.delay, s.precision, s.delay_s) == (pytest.approx(1.0), 1.0, 1.0, 0.0)
    assert s.composite == pytest.approx(1.0) and s.passed


def test_zero_response_scores_zero(regd: np.ndarray) -> None:
    s = score(regd[:HOUR], np.zeros(HOUR))
    assert (s.accuracy, s.delay, s.precision) == (0.0, 0.0, 0.0)
    assert math.isnan(s.delay_s) and s.composite == 0.0


@pytest.mark.parametrize("c", [0.3, -0.5])
def test_constant_response_gets_no_correlation_or_delay_credit(c: float) -> None:
    sig = np.sin(2 * np.pi * T / 300.0)  # whole periods per window; mean |sin| = 2/pi
    s = score(sig, np.full(HOUR, c))
    assert (s.accuracy, s.delay) == (0.0, 0.0)
    # by hand: mean |c - sin| over a period, relative to 2/pi
    theta = np.arcsin(abs(c))
    mean_abs_err = (2 * abs(c) * theta + 2 * math.cos(theta)) / math.pi  # (1/2pi) * int |c - sin|
    assert s.precision == pytest.approx(max(0.0, 1 - mean_abs_err / (2 / math.pi)), abs=2e-3)
    assert s.composite < 0.05


@pytest.mark.parametrize("delay_s", [0, 10, 60, 120, 180, 240])
def test_pure_delays_up_to_five_minutes(regd: np.ndarray, delay_s: int) -> None:
    lag = delay_s // 2
    resp = np.concatenate([np.full(lag, regd[0]), regd[: regd.size - lag]])  # two hours, delayed
    s = score(regd[:HOUR], resp[:HOUR], response_after=resp[HOUR:])
    assert s.delay_s == delay_s
    assert s.delay == pytest.approx(1 - delay_s / 300.0)
    assert s.accuracy == pytest.approx(1.0)


@pytest.mark.parametrize("delay_s", [270, 300])
def test_delays_near_five_minutes_earn_about_a_third(regd: np.ndarray, delay_s: int) -> None:
    """Near 5 min the delay score is small; at exactly 5 min C(300) + D(300) = 1 + 0, and the rule takes
    any delay whose C + D is larger (on RegD a weak correlation at delay 0 plus D = 1):
    either way the hour scores about 1/3, as PJM's rule gives."""
    lag = delay_s // 2
    resp = np.concatenate([np.full(lag, regd[0]), regd[: regd.size - lag]])
    s = score(regd[:HOUR], resp[:HOUR], response_after=resp[HOUR:])
    assert s.accuracy + s.delay >= 1.0 + (1 - delay_s / 300.0) - 1e-9  # at least what the true delay gives
    assert s.precision < 0.05 and s.composite < 0.42


def test_first_order_lag_on_a_sine() -> None:
    """Steady state of tau·y' = s - y for s = sin(wt), w·tau = 1: gain cos(pi/4), phase lag pi/4 (= 37.5 s
    for a 300 s period). By hand: C(d) = cos(w(d - 37.5)); C + D is largest at d = 30 s
    (0.9877 + 0.9 > C(40) + D(40) = 0.9986 + 0.8667); precision = 1 - |G e^{-i phi} - 1| = 1 - sin(pi/4)."""
    w = 2 * np.pi / 300.0
    phi = math.pi / 4
    tt = np.arange(2 * HOUR) * 2.0
    y = math.cos(phi) * np.sin(w * tt - phi)
    s = score(np.sin(w * T), y[:HOUR], response_after=y[HOUR:])
    assert s.delay_s == 30.0 and s.delay == pytest.approx(0.9)
    assert s.accuracy == pytest.approx(math.cos(w * 7.5), abs=1e-6)
    assert s.precision == pytest.approx(1 - math.sin(phi), abs=1e-3)


def test_quantised_response() -> None:
    """A triangle wave over [-1, 1] quantised to steps of q: the error is uniform in [-q/2, q/2], mean q/4,
    against mean |signal| 1/2, so precision = 1 - q/2; no delay."""
    q = 0.25
    phase = (T % 300.0) / 300.0
    tri = 4 * np.abs(phase - 0.5) - 1
    s = score(tri, np.round(tri / q) * q)
    assert s.precision == pytest.approx(1 - q / 2, abs=0.01)
    assert s.delay_s == 0.0 and s.delay == 1.0 and s.accuracy > 0.99


def test_correlation_is_per_five_minute_window() -> None:
    """A response that follows the signal in six windows and is flat in the other six: C = 6/12."""
    sig = np.sin(2 * np.pi * T / 60.0)
    resp = sig.copy()
    for w in range(1, 12, 2):
        resp[w * 150 : (w + 1) * 150] = 0.0
    s = score(sig, resp, response_after=np.zeros(150))
    assert s.accuracy == pytest.approx(0.5, abs=1e-9) and s.delay_s == 0.0


def test_unrelated_response_fails(regd: np.ndarray) -> None:
    noise = np.random.default_rng(0).normal(0, 0.5, HOUR)
    s = score(regd[:HOUR], noise)
    assert s.accuracy < 0.3 and s.composite < PASS_MARK and not s.passed


def test_resample_holds_steps_on_a_common_grid() -> None:
    # 4 s steps into 10 s samples: 1 for 8 s then 2 for 2 s in the first bucket: mean 1.2
    np.testing.assert_allclose(resample_mean(np.array([1.0, 1.0, 2.0, 2.0, 2.0]), 4.0, 10.0), [1.2, 2.0])
    np.testing.assert_allclose(resample_mean(np.array([1.0, 3.0]), 4.0, 2.0), [1.0, 1.0, 3.0, 3.0])


def test_too_short_or_mismatched_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 150 samples"):
        score(np.ones(10), np.ones(10))
    with pytest.raises(ValueError, match="equal length"):
        score(np.ones(200), np.ones(199))
    with pytest.raises(ValueError, match="must divide"):
        score(np.ones(200), np.ones(200), sample_s=3.0)


def test_hourly_scores_are_averaged(regd: np.ndarray) -> None:
    resp = np.concatenate([regd[:HOUR], np.zeros(HOUR)])  # perfect first hour, nothing in the second
    parts = hourly_scores(regd, resp)
    assert [round(p.composite, 6) for p in parts] == [1.0, 0.0]
    assert score_hourly(regd, resp).composite == pytest.approx(0.5)
