"""A charger's clock against ours, estimated from the timestamps it sends (pure: no I/O, time passed in).

Why: load management's live limits expire at ``validTo``, which the charger compares with *its own* clock. A
charger whose clock is behind ours would keep a live limit longer than ``[site] profile_validity_s`` after the
controller disappears, breaking the fail-safe window; one ahead would drop it early. So ``validTo`` is written
in the charger's clock, from this estimate.

Model (NTP's minimum-delay idea, one way): a message the charger stamps ``c`` at our time ``s`` reaches us at
our time ``r >= s`` (it cannot arrive before it was stamped). If the charger's clock reads ours plus ``theta``
(its offset), ``c = s + theta``, so ``y = c - r = theta - (r - s) <= theta``. Every sample is a *lower bound*
on the offset when it was stamped, and the least-delayed one is the tightest: the estimate is the largest
``y`` seen recently. Messages the charger buffered while offline carry old stamps and only lower ``y``: they
never raise the estimate. A lower bound is the safe side: a ``validTo`` written as ``T + offset`` with
``offset <= theta`` is reached by the charger at our ``T - (theta - offset) <= T``.

Drift: the offset changes at ``drift`` seconds per second (the charger's clock runs ``1 + drift`` times as
fast). Once the samples span ``min_rate_span_s``, the drift is fitted (least squares) to the largest ``y`` of
each ``bucket_s`` bucket, and the bound is carried forward at that rate; before that, or when the fit is
implausible for a clock (over ``max_fitted_drift``: message delays changing, not a crystal), it is 0. Either
way the margin grows with the time since the sample that set the bound, at ``max_drift`` (plus twice the
fitted rate's standard error), on top of ``resolution_s`` for chargers that stamp whole seconds (rounded).

A clock that steps back (a charger setting its clock from our Heartbeat answer) makes older samples too high:
the bound uses only samples received within ``recent_s`` of the newest one, and the caller forgets a charger's
samples when it boots (chargers commonly set their clock from the BootNotification answer).

Reconnections (``anchor``): after an outage the charger first sends what it buffered (transaction messages stamped
while it was offline, or while the central system was down), and those arrive in a burst. Each is a valid but loose
bound (its delay is the outage), and enough of them (``recent_min``) used to push the older, tight samples out of
the recent set: the estimate then fell by up to the outage (observed: 20 simulated minutes behind a charger whose
clock was exact), so every ``validTo`` written meanwhile was already past at the charger and its live limit never
applied (it ran on its fail-safe while the controller counted the live limit). So at each (re)connection the bound
carried to that instant, less its margin, becomes one sample received then, and a message stamped before that
sample is not kept: its stamp is older and it arrived later, so it is below that sample and can only displace it.
Messages stamped after the connection count as before; the anchor leaves the recent set like any sample. Not
covered: a clock stepped back while the charger was away without a boot (messages stamped before the anchor are
then dropped until its new clock passes the anchor's stamp).

The tightest samples are answers the charger computes when asked (load management's GetCompositeSchedule readback:
its ``scheduleStart`` is the charger's now): never queued behind its buffered messages, they bound the offset within
the round trip even while every message it sends waits in its queue (a backlog, or a simulation at 600x where a
quarter of a real second is 150 simulated ones).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np


@dataclass(frozen=True)
class SkewParams:
    """How much history the estimate uses and how wide its margin is."""

    #: samples older than this (received, our clock) are forgotten; the drift is fitted over this window
    window_s: float = 6 * 3600.0
    #: the offset bound comes from samples received within this of the newest one (protects against steps),
    #: or from the newest ``recent_min`` samples when that window holds fewer (a fast simulated clock)
    recent_s: float = 900.0
    recent_min: int = 16
    #: at most this many samples are kept (the oldest go first)
    max_samples: int = 512
    #: the drift is fitted only over at least this span and ``min_buckets`` buckets of ``bucket_s``
    min_rate_span_s: float = 1800.0
    bucket_s: float = 300.0
    min_buckets: int = 4
    #: timestamp resolution: a charger rounding to whole seconds may stamp up to this late
    resolution_s: float = 1.0
    #: drift assumed beyond the fitted one (100 ppm: a poor crystal), for the margin
    max_drift: float = 100e-6
    #: a fitted drift (or twice its standard error) beyond this is not a clock but changing message delays
    #: (a loaded network or event loop): the fit is then not used (1,000 ppm: 86 s a day, no real crystal)
    max_fitted_drift: float = 1000e-6


@dataclass(frozen=True)
class ClockEstimate:
    """The charger's clock at ``at`` (ours): ``offset_s`` ahead of ours (negative: behind), a lower bound.

    ``charger_time`` turns one of our instants into the charger's, on the early side by ``margin_s`` at ``at``
    plus ``margin_rate`` per second after it; ``samples`` says how many messages it rests on.
    """

    at: datetime
    offset_s: float
    drift: float
    margin_s: float
    margin_rate: float
    samples: int
    drift_fitted: bool

    def charger_time(self, ours: datetime) -> datetime:
        """What the charger's clock reads at our instant ``ours`` (never later than it really does, within
        the model): the bound carried at the drift, less the margin."""
        dt = (ours - self.at).total_seconds()
        shift = self.offset_s + self.drift * dt - self.margin_s - self.margin_rate * abs(dt)
        return ours + timedelta(seconds=shift)

    def ours(self, charger: datetime) -> datetime:
        """Our instant for a time stamped by the charger (for comparing its stamps with our clock)."""
        return charger - timedelta(seconds=self.offset_s)


class ClockSkew:
    """Samples of one charger's clock; ``add`` each timestamped message, ``estimate(now)`` when needed."""

    def __init__(self, params: SkewParams | None = None) -> None:
        self.params = params or SkewParams()
        self._r: deque[float] = deque()  # our receive times (POSIX seconds)
        self._y: deque[float] = deque()  # their stamp minus our receive time (seconds)
        self._anchor: float | None = None  # the newest anchor's stamp (POSIX seconds, their clock)

    def __len__(self) -> int:
        return len(self._r)

    def add(self, theirs: datetime, received: datetime) -> None:
        """One message stamped ``theirs`` by the charger, received at our ``received``. Not kept when stamped
        before the newest ``anchor``: it waited through the outage and is below the anchor's bound."""
        if self._anchor is not None and theirs.timestamp() < self._anchor:
            return
        r = received.timestamp()
        self._r.append(r)
        self._y.append(theirs.timestamp() - r)
        p = self.params
        while self._r and (len(self._r) > p.max_samples or r - self._r[0] > p.window_s):
            self._r.popleft()
            self._y.popleft()

    def anchor(self, now: datetime) -> None:
        """The charger (re)connected at our ``now``: the bound carried to ``now``, less its margin, becomes a
        sample received now, and messages stamped before it are not kept (see the module docstring). No-op
        before any sample (the buffered messages are then all there is to go by)."""
        est = self.estimate(now)
        if est is None:
            return
        theirs = now + timedelta(seconds=est.offset_s - est.margin_s)
        self._anchor = None
        self.add(theirs, now)
        self._anchor = theirs.timestamp()

    def estimate(self, now: datetime) -> ClockEstimate | None:
        """The offset bound at ``now`` and its margin; None before any sample."""
        if not self._r:
            return None
        p = self.params
        r = np.fromiter(self._r, float, len(self._r))
        y = np.fromiter(self._y, float, len(self._y))
        drift, drift_se = _fit_drift(r, y, p)
        fitted = drift_se is not None
        t_now = now.timestamp()
        recent = r >= min(r.max() - p.recent_s, np.sort(r)[-min(p.recent_min, r.size)])
        # Each recent sample, carried to now at the drift: the largest is the bound, its age sets the margin.
        carried = y[recent] + drift * (t_now - r[recent])
        best = int(np.argmax(carried))
        age = abs(t_now - r[recent][best])
        rate = p.max_drift + (2.0 * drift_se if drift_se is not None else 0.0)
        return ClockEstimate(
            at=now,
            offset_s=float(carried[best]),
            drift=drift,
            margin_s=p.resolution_s + rate * age,
            margin_rate=rate,
            samples=len(r),
            drift_fitted=fitted,
        )


def _fit_drift(r: np.ndarray, y: np.ndarray, p: SkewParams) -> tuple[float, float | None]:
    """The drift fitted to the least-delayed sample of each bucket, and its standard error; (0, None) when
    the samples are too few or span too little time to say."""
    if r.size < p.min_buckets or r.max() - r.min() < p.min_rate_span_s:
        return 0.0, None
    order = np.argsort(r, kind="stable")
    r, y = r[order], y[order]
    bucket = np.floor((r - r[0]) / p.bucket_s).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    if starts.size < p.min_buckets:
        return 0.0, None
    top = np.maximum.reduceat(y, starts)
    # Where each bucket's maximum sits (the first sample reaching it), for the fit's x.
    ends = np.r_[starts[1:], r.size]
    at = np.array([s + int(np.argmax(y[s:e] >= m)) for s, e, m in zip(starts, ends, top, strict=True)])
    x = r[at] - r[at].mean()
    sxx = float(x @ x)
    if sxx <= 0.0:
        return 0.0, None
    slope = float(x @ (top - top.mean())) / sxx
    resid = top - top.mean() - slope * x
    dof = max(top.size - 2, 1)
    se = float(np.sqrt(float(resid @ resid) / dof / sxx))
    if abs(slope) > p.max_fitted_drift or 2.0 * se > p.max_fitted_drift:
        return 0.0, None
    return slope, se
