"""Daily load profiles, k-means with k chosen by silhouette, and the baseload.

Why this shape: the seed study fitted k-means on unscaled profiles, scored silhouettes on scaled ones and then
ignored the score (k fixed at 5). Here the profiles are min-max scaled once (per hour of day, as the study
describes), and both the k-means fits and the silhouette scores use that same scaled matrix; k is the argmax.

Speed: the silhouette search is the expensive stage (29 values of k on ~730 days). The pairwise distance
matrix of the scaled days is computed once and reused for every k, and the silhouette itself is computed in
closed form from ``D @ onehot(labels)`` (exactly sklearn's definition, tested against it), which turns each
score into one small matrix product. The search seeds k = k_min with k-means++ and every further k by one
more k-means++ draw added to the converged (k-1)-centres (``n_init=1``, lloyd); the chosen k is then refitted
from scratch with ``n_init_final`` k-means++ starts (the reported clustering, whose own silhouette is kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from planning.errors import PlanningError

HOURS = 24
_THREADPOOLS: list = []  # one threadpoolctl controller per process (see _one_thread)


def _one_thread():
    """Limit BLAS/OpenMP to one thread for the block (a context manager).

    Why cached: ``threadpool_limits(1)`` scans the loaded shared libraries on every call (about 3 ms, as much
    as the final k-means); the controller found once per process gives the same limit for a dictionary
    look-up. A library loaded after the first call would be missed, so the first call happens at the first
    fit, after sklearn (and with it numpy's and scipy's BLAS and sklearn's OpenMP) is imported.
    """
    if not _THREADPOOLS:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1)


def is_hourly_grid(idx: pd.DatetimeIndex) -> bool:
    """True when the index is a regular grid of whole clock hours (what ``clean_series`` returns for an hourly
    meter): then each value is its own hourly mean, and pandas' ``resample("h")`` can be skipped."""
    if idx.size < 2 or idx[0] != idx[0].floor("h"):
        return False
    steps = np.diff(idx.asi8)
    return bool((steps == steps[0]).all()) and idx[1] - idx[0] == pd.Timedelta(hours=1)


def daily_profiles(kw: pd.Series) -> tuple[pd.DataFrame, int]:
    """Hourly means pivoted to one row per local day (24 columns); days with any missing hour are dropped.

    Returns the profiles and the number of days dropped (incomplete or touched by an unfilled gap).

    Speed: the input is the cleaned series on its regular naive-local grid, so hour ``i`` after the first
    midnight is row ``i // 24``, column ``i % 24`` of the day matrix: one reshape replaces pandas'
    ``pivot_table`` (a third of the ingest stage). A sub-hourly series is first averaged per clock hour with
    pandas' ``resample`` (its compensated mean, so the values are the ones the pivot used to see).
    """
    if kw.empty:
        raise PlanningError("no readings left after cleaning")
    idx = pd.DatetimeIndex(kw.index)
    one_hour = pd.Timedelta(hours=1)
    step = idx[1] - idx[0] if kw.size > 1 else one_hour
    if is_hourly_grid(idx):
        first_hour = idx[0]
        hourly = kw.to_numpy(dtype=float)  # already one value per clock hour: the hourly mean is the value
    else:
        per_hour = max(1, round(one_hour / step))
        grouped = kw.resample("h")
        counts = grouped.count().to_numpy()
        hourly = grouped.mean().to_numpy(dtype=float, copy=True)
        hourly[counts < per_hour] = np.nan  # an hour with a missing sample is not a measured hour
        first_hour = idx[0].floor("h")
    first_day = first_hour.normalize()
    offset = int((first_hour - first_day) // one_hour)
    n_days = -(-(offset + hourly.size) // HOURS)
    flat = np.full(n_days * HOURS, np.nan)
    flat[offset : offset + hourly.size] = hourly
    days = pd.date_range(first_day, periods=n_days, freq="D")
    wide = pd.DataFrame(flat.reshape(n_days, HOURS), index=days, columns=pd.RangeIndex(HOURS, name="hour"))
    complete = np.isfinite(flat).reshape(n_days, HOURS).all(axis=1)
    return wide[complete], int((~complete).sum())


def minmax_scale(x: np.ndarray) -> np.ndarray:
    """Per-hour min-max scaling (constant hours map to 0)."""
    lo = x.min(axis=0)
    span = x.max(axis=0) - lo
    return (x - lo) / np.where(span > 0, span, 1.0)


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix via the Gram trick (clipped at 0 against rounding)."""
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def silhouette_from_distances(d: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient from a precomputed distance matrix (sklearn's definition).

    a_i = mean distance to the other members of i's cluster, b_i = smallest mean distance to another
    cluster, s_i = (b_i - a_i) / max(a_i, b_i), and s_i = 0 for members of singleton clusters.
    """
    _, inv = np.unique(labels, return_inverse=True)
    k = int(inv.max()) + 1
    if k < 2 or k >= d.shape[0]:
        raise PlanningError(f"silhouette needs 2 <= clusters < samples (got {k} clusters, {d.shape[0]} samples)")
    onehot = np.zeros((d.shape[0], k), dtype=d.dtype)
    onehot[np.arange(d.shape[0]), inv] = 1.0
    sums = d @ onehot
    counts = onehot.sum(axis=0)
    own = counts[inv]
    rows = np.arange(d.shape[0])
    a = sums[rows, inv] / np.maximum(own - 1, 1)
    means = sums / counts
    means[rows, inv] = np.inf
    b = means.min(axis=1)
    denom = np.maximum(a, b)
    s = np.where((own > 1) & (denom > 0), (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(s.mean())


@dataclass
class ClusterSummary:
    label: int
    size: int
    median_kw: list[float]
    peak_kw: float
    weekday_days: int
    weekend_days: int
    seasons: dict[str, int]


@dataclass
class LoadStudy:
    """The fitted load study of one meter point (sklearn-style: learned state ends in ``_``)."""

    k_min: int = 2
    k_max: int = 30
    random_state: int = 0
    n_init_final: int = 4
    profiles_: pd.DataFrame = field(default_factory=pd.DataFrame)
    k_: int = 0
    silhouette_: dict[int, float] = field(default_factory=dict)
    silhouette_final_: float = 0.0  # of the reported (refitted) clustering
    labels_: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    clusters_: list[ClusterSummary] = field(default_factory=list)
    timings_: dict[str, float] = field(default_factory=dict)

    def fit(self, profiles: pd.DataFrame, timer=None) -> LoadStudy:
        """Choose k by silhouette and cluster the days. ``timer()`` returns seconds (perf counter)."""
        import sklearn
        from sklearn.cluster import KMeans

        # Tiny matrices: BLAS/OpenMP threads cost more than they save. The profiles are complete days (checked
        # finite by daily_profiles) and the parameters are ours, so sklearn's per-fit re-validation (about 15%
        # of the search) is skipped.
        with _one_thread(), sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self._fit(profiles, timer, KMeans)

    def _fit(self, profiles: pd.DataFrame, timer, kmeans_cls) -> LoadStudy:
        KMeans = kmeans_cls
        tick = timer or (lambda: 0.0)
        n = len(profiles)
        if n < 3:
            raise PlanningError(
                f"only {n} complete day(s) of data: a load study needs at least 3 (a year for NEC 220.87)"
            )
        x = profiles.to_numpy(dtype=float)
        if float(np.ptp(x)) <= 1e-9 * max(1.0, float(np.abs(x).max())):
            raise PlanningError("flat load: every hour of every day has the same value, there is nothing to cluster")
        xs = minmax_scale(x)
        distinct = np.unique(np.round(xs, 9), axis=0).shape[0]
        k_hi = min(self.k_max, n - 1, distinct)
        k_lo = min(self.k_min, k_hi)
        if k_hi < 2:
            raise PlanningError(f"only {distinct} distinct daily profile(s): cannot form 2 or more clusters")
        t0 = tick()
        d = pairwise_distances(xs).astype(np.float32)  # float32 halves the 29 (n x n) @ (n x k) products
        scores: dict[int, float] = {}
        rng = np.random.default_rng(self.random_state)
        sq = np.einsum("ij,ij->i", xs, xs)
        centers: np.ndarray | None = None
        for k in range(k_lo, k_hi + 1):
            if centers is None:
                km = KMeans(n_clusters=k, n_init=1, random_state=self.random_state, algorithm="lloyd").fit(xs)
            else:
                # Grow the converged (k-1)-solution by one k-means++ draw (probability ~ squared distance to
                # the nearest centre) instead of re-seeding from scratch: same seeding rule, a fraction of the
                # cost, and each k starts from a good solution.
                d2 = np.maximum(sq[:, None] - 2.0 * xs @ centers.T + np.einsum("ij,ij->i", centers, centers), 0.0)
                p = d2.min(axis=1)
                if p.sum() <= 0:
                    break  # every profile is already a centre: no larger k can differ
                init = np.vstack([centers, xs[rng.choice(xs.shape[0], p=p / p.sum())]])
                km = KMeans(n_clusters=k, init=init, n_init=1, algorithm="lloyd").fit(xs)
            centers = km.cluster_centers_
            if np.unique(km.labels_).size < 2:
                continue
            scores[k] = silhouette_from_distances(d, km.labels_)
        if not scores:
            raise PlanningError("k-means found no two distinct clusters in the daily profiles")
        t1 = tick()
        best = max(scores, key=lambda k: (scores[k], -k))
        final = KMeans(n_clusters=best, n_init=self.n_init_final, random_state=self.random_state, algorithm="lloyd")
        labels = final.fit_predict(xs)
        t2 = tick()
        self.silhouette_final_ = silhouette_from_distances(d, labels) if np.unique(labels).size > 1 else 0.0
        self.profiles_, self.k_, self.silhouette_, self.labels_ = profiles, best, scores, labels
        self.clusters_ = summarise_clusters(profiles, labels)
        self.timings_ = {"silhouette_search_s": t1 - t0, "kmeans_s": t2 - t1}
        return self

    def worst_cluster(self) -> ClusterSummary:
        """The seed study's baseload cluster: the one whose median profile has the highest peak."""
        return max(self.clusters_, key=lambda c: c.peak_kw)

    def baseload(self, method: str = "max_median", percentile: float = 95.0) -> np.ndarray:
        """24 hourly kW: the worst cluster's median, or its hourly ``percentile`` (conservative plan)."""
        worst = self.worst_cluster()
        if method == "max_median":
            return np.asarray(worst.median_kw)
        if method == "percentile":
            days = self.profiles_.to_numpy()[self.labels_ == worst.label]
            return np.percentile(days, percentile, axis=0)
        raise PlanningError(f"planning.baseload must be 'max_median' or 'percentile' (got {method!r})")

    def worst_days(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.profiles_.index[self.labels_ == self.worst_cluster().label])


_SEASON = np.array(["winter"] * 2 + ["spring"] * 3 + ["summer"] * 3 + ["autumn"] * 3 + ["winter"])


def summarise_clusters(profiles: pd.DataFrame, labels: np.ndarray) -> list[ClusterSummary]:
    """Size, median profile, weekday/weekend split and (northern, meteorological) season split per cluster."""
    idx = pd.DatetimeIndex(profiles.index)
    weekend = idx.day_of_week >= 5
    season = _SEASON[idx.month - 1]
    x = profiles.to_numpy()
    out = []
    for lab in np.unique(labels):
        m = labels == lab
        med = np.median(x[m], axis=0)
        seasons = {s: int((season[m] == s).sum()) for s in ("winter", "spring", "summer", "autumn")}
        out.append(
            ClusterSummary(
                label=int(lab),
                size=int(m.sum()),
                median_kw=[float(v) for v in med],
                peak_kw=float(med.max()),
                weekday_days=int((m & ~weekend).sum()),
                weekend_days=int((m & weekend).sum()),
                seasons=seasons,
            )
        )
    return out
