"""The charger-clock estimate is a lower bound on the offset (the safe side for validTo), robust to queued
messages, and follows a drifting clock once the samples span enough time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from controller.clock_skew import ClockSkew

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _feed(skew: ClockSkew, offset_s: float, delays_s: np.ndarray, every_s: float, drift: float = 0.0) -> datetime:
    """Messages stamped by a clock ``offset_s`` ahead (drifting at ``drift``), arriving after ``delays_s``."""
    received = T0
    for i, d in enumerate(delays_s):
        stamped = T0 + timedelta(seconds=i * every_s)
        received = stamped + timedelta(seconds=float(d))
        theirs = stamped + timedelta(seconds=offset_s + drift * i * every_s)
        skew.add(theirs, received)
    return received


def test_the_estimate_is_the_least_delayed_sample_and_never_above_the_true_offset() -> None:
    rng = np.random.default_rng(4)
    delays = rng.exponential(0.3, 40) + 0.02
    for offset in (-600.0, 0.0, 600.0):
        skew = ClockSkew()
        last = _feed(skew, offset, delays, 30.0)
        est = skew.estimate(last)
        assert est is not None
        # a lower bound within the smallest delay of the last 15 minutes (the last 30 samples)
        recent_min = delays[-30:].min()
        assert offset - recent_min - 1e-6 <= est.offset_s <= offset + 1e-6
        # the charger time it writes is early by at least the resolution margin, and never late
        ours = last + timedelta(seconds=120)
        truth = ours + timedelta(seconds=offset)
        written = est.charger_time(ours)
        assert written <= truth
        # early by the 1 s resolution, the delay, and 100 ppm over the sample's age (at most ~17 min)
        assert (truth - written).total_seconds() < 1.0 + recent_min + 0.11


def test_offline_buffered_messages_with_old_stamps_do_not_raise_the_estimate() -> None:
    skew = ClockSkew()
    last = _feed(skew, -600.0, np.full(10, 0.05), 30.0)
    before = skew.estimate(last)
    # twenty messages stamped over the last 20 minutes, all delivered now (the charger was offline)
    for k in range(20):
        skew.add(last - timedelta(seconds=600 + 60 * k), last + timedelta(seconds=1))
    after = skew.estimate(last + timedelta(seconds=1))
    assert before is not None and after is not None
    assert after.offset_s <= -600.0 + 1e-6
    assert after.offset_s == before.offset_s


def test_a_drifting_clock_is_followed_and_the_bound_stays_below_it() -> None:
    drift = 500e-6  # 500 ppm fast: 1.8 s an hour
    skew = ClockSkew()
    delays = np.random.default_rng(1).exponential(0.2, 180) + 0.01
    last = _feed(skew, 10.0, delays, 60.0, drift)  # three hours of minute samples
    est = skew.estimate(last)
    assert est is not None and est.drift_fitted
    assert abs(est.drift - drift) < 100e-6
    # our instant an hour ahead of the last sample: the written charger time is still not late
    ours = last + timedelta(hours=1)
    truth_offset = 10.0 + drift * (ours - T0).total_seconds()
    truth = ours + timedelta(seconds=truth_offset)
    assert est.charger_time(ours) <= truth
    assert (truth - est.charger_time(ours)).total_seconds() < 3.0


def test_no_estimate_before_any_sample_and_a_clock_set_back_is_followed_within_the_recent_window() -> None:
    skew = ClockSkew()
    assert skew.estimate(T0) is None
    for k in range(20):  # a minute apart, the charger 5 min ahead ...
        at = T0 + timedelta(minutes=k)
        skew.add(at + timedelta(seconds=300), at)
    for k in range(20, 40):  # ... then set back to 2 s behind (e.g. from a Heartbeat answer)
        at = T0 + timedelta(minutes=k)
        skew.add(at - timedelta(seconds=2), at)
    # The old, higher samples are out of the recent window (15 min and the newest 16 samples): the bound is the
    # new clock's.
    est = skew.estimate(T0 + timedelta(minutes=39))
    assert est is not None and abs(est.offset_s + 2.0) < 1e-6


def test_a_drift_fitted_to_changing_delays_is_not_taken_for_a_clock() -> None:
    skew = ClockSkew()
    delays = np.linspace(0.05, 30.0, 120)  # a queue building up over two hours: 0.4 % "drift" of the delays
    last = _feed(skew, 0.0, delays, 60.0)
    est = skew.estimate(last)
    assert est is not None and not est.drift_fitted and est.drift == 0.0
    assert est.offset_s <= 0.0


def test_the_backlog_sent_first_after_a_reconnection_does_not_pull_the_bound_down() -> None:
    skew = ClockSkew()
    last = _feed(skew, -600.0, np.full(20, 0.05), 30.0)  # ten minutes of prompt messages, 10 min slow
    # Offline for an hour; back, it first sends the 40 meter values it buffered meanwhile (one every 0.5 s).
    back = last + timedelta(hours=1)
    skew.anchor(back)
    for k in range(40):
        stamped = last + timedelta(seconds=90 * (k + 1))
        received = back + timedelta(seconds=0.5 * (k + 1))
        skew.add(stamped + timedelta(seconds=-600.0), received)
        est = skew.estimate(received)
        assert est is not None
        # The prompt messages' bound carried over the hour (1 s resolution, 100 ppm of the hour: 0.36 s), not the
        # backlog's: without the anchor, from the 17th message on (the older samples out of the recent set) the
        # bound was the newest buffered one's, e.g. 2,768 s behind the truth after the 16th.
        assert -600.0 - 1.4 <= est.offset_s <= -600.0, k
    # A prompt message after the reconnection is a sample as before: the bound is its own again.
    skew.add(back + timedelta(seconds=21 - 600.0 - 0.05), back + timedelta(seconds=21))
    est = skew.estimate(back + timedelta(seconds=21))
    assert est is not None and abs(est.offset_s + 600.05) < 1e-6
