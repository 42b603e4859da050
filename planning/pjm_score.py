"""PJM regulation performance score of a resource's response to the regulation signal.

Implements the scoring of PJM Manual 12 (Balancing Operations), section 4 "Regulation", performance-score
subsection (4.5.6 "Performance Score" in the 2017-2020 revisions; the section number could not be checked
against the manual text offline). Both series are compared at 10-second samples:

- Accuracy (correlation) score: the largest Pearson correlation between the signal and the response
  shifted by a delay ``delta`` in 0 .. 5 minutes (10 s steps);
- Delay score: ``|(delta - 5 min) / 5 min|`` at that best ``delta`` (1 for an immediate response, 0 for 5 min);
- Precision score: ``1 - mean(|response - signal|) / mean(|signal|)`` over the hour (PJM divides the
  absolute error by the hourly average of the signal's magnitude);
- Composite: the mean of the three. A resource passes with a composite of at least 0.75.

PJM scores each hour (the precision's normaliser is the hourly average) and averages the hourly scores;
``score_hourly`` does that for runs of an hour or more, ``score`` scores one window.

Signal and response are in the same unit (per unit of the capacity offered, or MW); each score is clipped
to [0, 1]. Pure numpy; no dependence on the aggregator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

PASS_MARK = 0.75
SAMPLE_S = 10.0
MAX_DELAY_S = 300.0


@dataclass(frozen=True)
class PerformanceScore:
    accuracy: float
    delay: float
    precision: float
    delay_s: float

    @property
    def composite(self) -> float:
        return (self.accuracy + self.delay + self.precision) / 3.0

    @property
    def passed(self) -> bool:
        return self.composite >= PASS_MARK


def resample_mean(values: NDArray[np.float64], dt_s: float, sample_s: float = SAMPLE_S) -> NDArray[np.float64]:
    """Average a step series (each value held for ``dt_s``) over ``sample_s`` buckets.

    The steps need not divide the sample period (4 s control steps, 10 s PJM samples): the series is held
    on the common grid of both periods, then averaged; an incomplete last bucket is dropped.
    """
    dt_ms, sample_ms = round(dt_s * 1000), round(sample_s * 1000)
    if dt_ms <= 0 or sample_ms <= 0:
        raise ValueError(f"periods must be positive, got step {dt_s} s and sample {sample_s} s")
    grid = math.gcd(dt_ms, sample_ms)
    held = np.repeat(np.asarray(values, dtype=float), dt_ms // grid)
    per = sample_ms // grid
    n = held.size // per
    return held[: n * per].reshape(n, per).mean(axis=1)


def _corr(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def score(
    signal: NDArray[np.float64],
    response: NDArray[np.float64],
    sample_s: float = SAMPLE_S,
    max_delay_s: float = MAX_DELAY_S,
) -> PerformanceScore:
    """Score ``response`` against ``signal``, both already sampled every ``sample_s`` (same length)."""
    s = np.asarray(signal, dtype=float)
    r = np.asarray(response, dtype=float)
    if s.shape != r.shape or s.ndim != 1:
        raise ValueError(f"signal and response must be 1-D of equal length, got {s.shape} and {r.shape}")
    max_lag = int(max_delay_s // sample_s)
    if s.size <= max_lag + 2:
        raise ValueError(f"need more than {max_lag + 2} samples ({(max_lag + 2) * sample_s:.0f} s) to score")
    n = s.size - max_lag  # compare equal-length windows for every delay
    corrs = np.array([_corr(s[:n], r[lag : lag + n]) for lag in range(max_lag + 1)])
    best = int(np.argmax(corrs))
    delay_s = best * sample_s
    accuracy = float(np.clip(corrs[best], 0.0, 1.0))
    delay = float(np.clip(abs((delay_s - max_delay_s) / max_delay_s), 0.0, 1.0))
    mean_abs = np.mean(np.abs(s))
    precision = 0.0 if mean_abs == 0 else float(np.clip(1.0 - np.mean(np.abs(r - s)) / mean_abs, 0.0, 1.0))
    return PerformanceScore(accuracy, delay, precision, delay_s)


def score_hourly(
    signal: NDArray[np.float64], response: NDArray[np.float64], sample_s: float = SAMPLE_S
) -> PerformanceScore:
    """Score every complete hour separately and average the components (one window when under two hours).

    The reported ``delay_s`` is the mean of the hourly delays.
    """
    per_hour = round(3600.0 / sample_s)
    hours = np.asarray(signal).size // per_hour
    if hours < 2:
        return score(signal, response, sample_s)
    parts = [
        score(signal[h * per_hour : (h + 1) * per_hour], response[h * per_hour : (h + 1) * per_hour], sample_s)
        for h in range(hours)
    ]
    return PerformanceScore(
        float(np.mean([p.accuracy for p in parts])),
        float(np.mean([p.delay for p in parts])),
        float(np.mean([p.precision for p in parts])),
        float(np.mean([p.delay_s for p in parts])),
    )
