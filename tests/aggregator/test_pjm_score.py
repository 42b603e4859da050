"""PJM performance score: accuracy (best correlation over 0-5 min delays), delay, precision, composite."""

from __future__ import annotations

import numpy as np
import pytest

from planning.pjm_score import PASS_MARK, resample_mean, score, score_hourly


@pytest.fixture(scope="module")
def regd(shared_data) -> np.ndarray:
    """One hour of the real RegD signal, averaged to 10 s samples."""
    import pandas as pd

    s = pd.read_csv(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv", nrows=1800 * 10)["regd"]
    return resample_mean(s.to_numpy()[9 * 1800 : 10 * 1800], 2.0)


def test_perfect_response_scores_one(regd: np.ndarray) -> None:
    s = score(regd, regd)
    assert (s.accuracy, s.delay, s.precision, s.delay_s) == (pytest.approx(1.0), 1.0, 1.0, 0.0)
    assert s.composite == pytest.approx(1.0) and s.passed


@pytest.mark.parametrize("lag", [1, 6, 15, 30])
def test_delayed_response_is_found_and_scored(regd: np.ndarray, lag: int) -> None:
    delayed = np.concatenate([np.full(lag, regd[0]), regd[:-lag]])
    s = score(regd, delayed)
    assert s.delay_s == lag * 10.0
    assert s.delay == pytest.approx(abs((lag * 10.0 - 300.0) / 300.0))
    assert s.accuracy > 0.99


@pytest.mark.parametrize(("gain", "precision"), [(0.5, 0.5), (0.0, 0.0), (1.25, 0.75)])
def test_precision_is_one_minus_relative_absolute_error(regd: np.ndarray, gain: float, precision: float) -> None:
    s = score(regd, gain * regd)
    assert s.precision == pytest.approx(precision)


def test_unrelated_response_fails(regd: np.ndarray) -> None:
    noise = np.random.default_rng(0).normal(0, 0.5, regd.size)
    s = score(regd, noise)
    assert s.accuracy < 0.3 and s.composite < PASS_MARK and not s.passed


def test_resample_holds_steps_on_a_common_grid() -> None:
    # 4 s steps into 10 s samples: 1 for 8 s then 2 for 2 s in the first bucket: mean 1.2
    np.testing.assert_allclose(resample_mean(np.array([1.0, 1.0, 2.0, 2.0, 2.0]), 4.0), [1.2, 2.0])


def test_too_short_or_mismatched_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="need more than"):
        score(np.ones(10), np.ones(10))
    with pytest.raises(ValueError, match="equal length"):
        score(np.ones(100), np.ones(99))


def test_hourly_scores_are_averaged(shared_data) -> None:
    import pandas as pd

    s = pd.read_csv(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv", nrows=2 * 1800)["regd"]
    sig = resample_mean(s.to_numpy(), 2.0)  # two hours at 10 s
    resp = np.concatenate([sig[:360], 0.5 * sig[360:]])  # perfect first hour, half gain in the second
    h = score_hourly(sig, resp)
    assert h.precision == pytest.approx((1.0 + 0.5) / 2)
    assert h.accuracy == pytest.approx(1.0) and h.delay == 1.0
    assert score_hourly(sig[:400], resp[:400]) == score(sig[:400], resp[:400])  # under two hours: one window
