"""Estimating the SSM transition matrix A from a fleet's observed transitions.

Why a test mode: under normal operation most cars charge, so the idle and discharging states (and the
SoC bins nobody is in yet) are never observed and their columns of A stay unknown. The study therefore ran
a *test mode* that assigns random charge/idle/discharge controls; here every EV gets a random mode every
``hold_s`` seconds, and with ``cover_soc`` the copy's SoCs are spread uniformly over [0, 1] so every SoC bin
is visited.

Seed defect fixed: the study's test mode advanced the SoC twice per step, so its A described 8 s steps
while the model used it for 4 s steps. Here each observed transition is exactly one ``dt_s`` step of the
fleet simulator (``FleetStepper.step``), and a test checks that the estimated drift per step matches the
physics.

The fleet passed in is never modified (the estimate runs on a copy).
"""

from __future__ import annotations

import numpy as np

from evsite.ev_fleet import Fleet, FleetStepper
from planning.ssm import StateSpaceModel, effective_mode, state_index, transition_counts


def collect_transitions(
    fleet: Fleet,
    *,
    ns: int = 20,
    t0_s: float = 0.0,
    duration_s: float = 3600.0,
    dt_s: float = 4.0,
    test_mode: bool = True,
    boundary: bool = True,
    hold_s: float = 100.0,
    cover_soc: bool = True,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Transition counts (3·ns x 3·ns, ``counts[next, prev]``) observed over ``duration_s``.

    ``test_mode``: random modes every ``hold_s`` and every car online; otherwise the fleet's own modes and
    arrival/departure times (cars must be online before and after a step to count).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    f = fleet.take(slice(None))
    n = len(f)
    if test_mode:
        f.arrival_s[:] = -np.inf
        f.departure_s[:] = np.inf
        if cover_soc:
            f.soc[:] = rng.uniform(0.0, 1.0, n)
    commanded = f.mode.copy()
    stepper = FleetStepper(f)
    counts = np.zeros((3 * ns, 3 * ns))
    steps = round(duration_s / dt_s)
    hold_steps = max(1, round(hold_s / dt_s))
    for k in range(steps):
        t = t0_s + k * dt_s
        if test_mode and k % hold_steps == 0:
            commanded = rng.integers(0, 3, n).astype(np.int8)
        prev = state_index(effective_mode(commanded, f.soc, boundary), f.soc, ns)
        online_before = f.online(t)
        f.mode[:] = commanded  # the chargers keep applying the command; the car may refuse at a bound
        stepper.step(t, dt_s)
        nxt = state_index(effective_mode(commanded, f.soc, boundary), f.soc, ns)
        counts += transition_counts(prev, nxt, online_before & f.online(t + dt_s), ns)
    return counts


def estimate_model(fleet: Fleet, *, ns: int = 20, learning_rate: float = 0.1, **kwargs) -> StateSpaceModel:
    """A fitted ``StateSpaceModel`` from ``collect_transitions(fleet, ns=ns, **kwargs)``."""
    return StateSpaceModel(ns, learning_rate).fit(collect_transitions(fleet, ns=ns, **kwargs))
