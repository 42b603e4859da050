"""Straightforward reference implementations the fast planning paths are tested against."""

from __future__ import annotations

import heapq

import numpy as np


def assign_chargers(arrival: np.ndarray, departure: np.ndarray, n: int) -> np.ndarray:
    """Charger index per session (-1: all ``n`` busy at arrival, not served). Sessions sorted by arrival.

    The plain heap loop over every session: the reference ``planning.sizing.placed_sessions`` is tested
    against (it skips the loop while chargers are free)."""
    free = list(range(n))
    heapq.heapify(free)
    busy: list[tuple[float, int]] = []
    out = np.full(arrival.size, -1, dtype=np.int64)
    for i, (a, d) in enumerate(zip(arrival, departure, strict=True)):
        while busy and busy[0][0] <= a:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            c = heapq.heappop(free)
            out[i] = c
            heapq.heappush(busy, (d, c))
    return out
