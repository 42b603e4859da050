"""Shared helpers for simulator tests: small fleets and driving a site on a ManualClock."""

from __future__ import annotations

import asyncio

import numpy as np

from evsite.clock import ManualClock
from evsite.ev_fleet import Fleet
from simulators.site import SimulatedSite


def small_fleet(
    n: int,
    arrival_s: float = 30.0,
    departure_s: float = 4 * 3600.0,
    *,
    p_kw: float = 11.0,
    soc: float = 0.2,
    soc_target: float = 0.9,
    capacity_kwh: float = 50.0,
) -> Fleet:
    """``n`` identical cars arriving and leaving together (easy to reason about in assertions)."""
    return Fleet(
        arrival_s=np.full(n, arrival_s),
        departure_s=np.full(n, departure_s),
        capacity_kwh=np.full(n, capacity_kwh),
        p_charge_kw=np.full(n, p_kw),
        p_discharge_kw=np.full(n, p_kw),
        efficiency=np.full(n, 0.9),
        soc=np.full(n, soc),
        soc_target=np.full(n, soc_target),
        mode=np.zeros(n, dtype=np.int8),
    )


async def settle(rounds: int = 4) -> None:
    """Let real socket I/O happen between clock steps."""
    for _ in range(rounds):
        await asyncio.sleep(0.005)


async def advance(site: SimulatedSite, clock: ManualClock, seconds: float, step_s: float = 10.0) -> None:
    """Move simulated time forward in site steps, letting messages flow after each."""
    done = 0.0
    while done < seconds - 1e-9:
        dt = min(step_s, seconds - done)
        await clock.advance(dt)
        site.step()
        await settle()
        done += dt
