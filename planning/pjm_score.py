"""PJM regulation performance score of a resource's response to the regulation signal.

Follows PJM Manual 12 (Balancing Operations), section 4 "Regulation", performance-score subsection, as far
as its public text describes the method (the manual's section number and exact revision could not be
checked offline). Each clock hour is scored on its own, and a run's score is the mean of its hourly scores.

Per hour, with the signal and the response in the same unit (per unit of the capacity offered):

- Correlation (accuracy) score: the hour is cut into twelve 5-minute windows. For every delay ``delta``
  in 0 .. 5 minutes (10 s increments) and every window, the Pearson correlation of the signal over the
  window with the response over the same window shifted later by ``delta``; ``C(delta)`` is the mean over
  the windows.
- Delay score: ``D(delta) = |(delta - 5 min) / 5 min|``. The delay is the ``delta`` that maximises
  ``C(delta) + D(delta)`` (correlation and delay together, not the best correlation alone); the hour's
  accuracy and delay scores are ``C`` and ``D`` at that delay.
- Precision score: ``1 - mean(|response - signal|) / mean(|signal|)`` over the hour at the signal's native
  resolution (2 s for RegD; no sample is dropped).
- Composite: the mean of the three. A resource passes with a composite of at least 0.75.

Departures, each because the public text leaves the point open or the literal rule rewards doing nothing:

- A response that does not vary within a window (zero, constant: nothing was offered or delivered) has no
  correlation with the signal; the window counts as correlation 0. The delay is then chosen only among
  delays with a positive correlation ``C(delta) > 0``; when there is none the response was never found,
  and the delay score is 0 (the literal rule would pick ``delta = 0`` and award 1.0 to a resource that did
  nothing, so an hour without capacity would score 0.33 instead of 0).
- Correlations are computed on the samples at their native resolution (the delay steps are 10 s); a window
  whose shifted response runs past the end of the recorded data is correlated over the overlap only (this
  concerns only the last minutes of a run).
- Each score is clipped to [0, 1].

A consequence of the combined rule kept as PJM states it: a response delayed by exactly 5 minutes has
``C(300 s) + D(300 s) = 1 + 0``, and any delay with a larger sum wins (on RegD, a weak correlation at
delay 0 plus ``D = 1``); either way such an hour scores about 1/3.

Pure numpy; no dependence on the aggregator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

PASS_MARK = 0.75
#: RegD's native sample period (s).
NATIVE_S = 2.0
DELAY_STEP_S = 10.0
MAX_DELAY_S = 300.0
WINDOW_S = 300.0
HOUR_S = 3600.0

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PerformanceScore:
    accuracy: float
    delay: float
    precision: float
    delay_s: float  # the chosen delay (s); nan when the response was never found

    @property
    def composite(self) -> float:
        return (self.accuracy + self.delay + self.precision) / 3.0

    @property
    def passed(self) -> bool:
        return self.composite >= PASS_MARK


def resample_mean(values: FloatArray, dt_s: float, sample_s: float) -> FloatArray:
    """Average a step series (each value held for ``dt_s``) over ``sample_s`` buckets.

    The steps need not divide the sample period: the series is held on the common grid of both periods,
    then averaged; an incomplete last bucket is dropped. With ``sample_s < dt_s`` it repeats each value.
    """
    dt_ms, sample_ms = round(dt_s * 1000), round(sample_s * 1000)
    if dt_ms <= 0 or sample_ms <= 0:
        raise ValueError(f"periods must be positive, got step {dt_s} s and sample {sample_s} s")
    grid = math.gcd(dt_ms, sample_ms)
    held = np.repeat(np.asarray(values, dtype=float), dt_ms // grid)
    per = sample_ms // grid
    n = held.size // per
    return held[: n * per].reshape(n, per).mean(axis=1)


def _window_correlations(s: FloatArray, r: FloatArray, win: int, lags: NDArray[np.intp]) -> FloatArray:
    """corr[lag, w]: correlation of ``s`` over window w with ``r`` over the same window shifted by ``lag``.

    Vectorised over windows and lags. A window whose response (or signal) does not vary counts 0; a shift
    past the end of ``r`` uses the overlap (fewer than 3 samples: 0).
    """
    n_win = s.size // win
    pad = np.full(n_win * win + int(lags[-1]), np.nan)
    m = min(r.size, pad.size)
    pad[:m] = r[:m]
    starts = np.arange(n_win) * win
    y = np.lib.stride_tricks.sliding_window_view(pad, win)[starts[:, None] + lags[None, :]]  # (win#, lag, win)
    x = np.broadcast_to(s[: n_win * win].reshape(n_win, 1, win), y.shape)
    ok = ~np.isnan(y)
    cnt = ok.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = np.where(ok, x, 0.0).sum(axis=2) / cnt
        ym = np.where(ok, y, 0.0).sum(axis=2) / cnt
        dx = np.where(ok, x - xm[..., None], 0.0)
        dy = np.where(ok, y - ym[..., None], 0.0)
        sx = np.sqrt((dx**2).sum(axis=2) / cnt)
        sy = np.sqrt((dy**2).sum(axis=2) / cnt)
        c = (dx * dy).sum(axis=2) / cnt / (sx * sy)
    c = np.where((cnt >= 3) & (sx > 1e-9) & (sy > 1e-9), c, 0.0)
    return c.T


def score(
    signal: FloatArray,
    response: FloatArray,
    sample_s: float = NATIVE_S,
    *,
    response_after: FloatArray | None = None,
) -> PerformanceScore:
    """Score one period (normally one hour) of ``response`` against ``signal``, both sampled every ``sample_s``.

    ``response_after``: the response recorded after the period (the next hour's), so the delayed windows at
    the end of the period see real data; without it they use the overlap only.
    """
    s = np.asarray(signal, dtype=float)
    r = np.asarray(response, dtype=float)
    if s.shape != r.shape or s.ndim != 1:
        raise ValueError(f"signal and response must be 1-D of equal length, got {s.shape} and {r.shape}")
    per_s = DELAY_STEP_S / sample_s
    if abs(per_s - round(per_s)) > 1e-9 or per_s < 1:
        raise ValueError(f"sample period {sample_s} s must divide the {DELAY_STEP_S:g} s delay step")
    win = round(WINDOW_S / sample_s)
    if s.size < win:
        raise ValueError(f"need at least {win} samples ({WINDOW_S:.0f} s) to score, got {s.size}")
    lags = np.arange(0, round(MAX_DELAY_S / sample_s) + 1, round(per_s))
    r_ext = r if response_after is None else np.concatenate([r, np.asarray(response_after, float)])
    corr = _window_correlations(s, r_ext, win, lags).mean(axis=1)
    delay_scores = np.abs((lags * sample_s - MAX_DELAY_S) / MAX_DELAY_S)
    found = corr > 0
    if found.any():
        best = int(np.argmax(np.where(found, corr + delay_scores, -np.inf)))
        accuracy, delay, delay_s = float(corr[best]), float(delay_scores[best]), float(lags[best] * sample_s)
    else:
        accuracy, delay, delay_s = 0.0, 0.0, float("nan")
    mean_abs = np.mean(np.abs(s))
    precision = 0.0 if mean_abs == 0 else 1.0 - float(np.mean(np.abs(r - s)) / mean_abs)
    return PerformanceScore(float(np.clip(accuracy, 0, 1)), delay, float(np.clip(precision, 0, 1)), delay_s)


def hourly_scores(signal: FloatArray, response: FloatArray, sample_s: float = NATIVE_S) -> list[PerformanceScore]:
    """One score per complete hour (a run shorter than an hour is scored as one period)."""
    s, r = np.asarray(signal, float), np.asarray(response, float)
    per_hour = round(HOUR_S / sample_s)
    hours = s.size // per_hour
    if hours == 0:
        return [score(s, r, sample_s)]
    return [
        score(s[h * per_hour : (h + 1) * per_hour], r[h * per_hour : (h + 1) * per_hour], sample_s,
              response_after=r[(h + 1) * per_hour : (h + 1) * per_hour + round(MAX_DELAY_S / sample_s)])
        for h in range(hours)
    ]  # fmt: skip


def mean_score(parts: list[PerformanceScore]) -> PerformanceScore:
    """The components averaged over hours (``delay_s``: mean over the hours where the response was found)."""
    delays = [p.delay_s for p in parts if not math.isnan(p.delay_s)]
    return PerformanceScore(
        float(np.mean([p.accuracy for p in parts])),
        float(np.mean([p.delay for p in parts])),
        float(np.mean([p.precision for p in parts])),
        float(np.mean(delays)) if delays else float("nan"),
    )


def score_hourly(signal: FloatArray, response: FloatArray, sample_s: float = NATIVE_S) -> PerformanceScore:
    """Score every complete hour separately and average the components (PJM averages hourly scores)."""
    return mean_score(hourly_scores(signal, response, sample_s))
