"""What really happened on the simulated site: total load against the service limit, second by second.

Why in the simulator: the simulated site is the physical world, so it measures violations independently of
the controller under test. The limit is ``continuous_load_factor x rating`` in kW (the building meter is not
modelled per phase, so the comparison is in kW on the total). A *violation* is a maximal run of simulated
time above the limit lasting longer than the allowed response time (``[site] response_s``); each site step
counts its whole length (power is constant over a step in the physics), so a step longer than the response
time that ends over the limit is one violation by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class GroundTruth:
    limit_kw: float
    response_s: float
    keep_series: bool = False
    peak_kw: float = 0.0
    seconds_over: float = 0.0
    max_excess_kw: float = 0.0
    violations: int = 0
    _run_s: float = 0.0
    series: list[tuple[float, float, float]] = field(default_factory=list)  # (t_s, building_kw, ev_kw)

    def record(self, t_s: float, dt_s: float, building_kw: float, ev_kw: float) -> None:
        """The step of ``dt_s`` seconds ending at ``t_s`` drew ``building_kw + ev_kw``."""
        total = building_kw + ev_kw
        self.peak_kw = max(self.peak_kw, total)
        if self.keep_series:
            self.series.append((round(t_s, 3), round(building_kw, 3), round(ev_kw, 3)))
        if total > self.limit_kw + 1e-9:
            self.seconds_over += dt_s
            self.max_excess_kw = max(self.max_excess_kw, total - self.limit_kw)
            self._run_s += dt_s
        else:
            self._close_run()

    def _close_run(self) -> None:
        if self._run_s > self.response_s:
            self.violations += 1
        self._run_s = 0.0

    def finish(self) -> None:
        """Close a run still open at the end of the simulation."""
        self._close_run()

    def report(
        self,
        energy_requested_kwh: float,
        energy_delivered_kwh: float,
        sessions: int,
        sessions_served: int,
        speed: float,
        *,
        with_series: bool = False,
    ) -> dict[str, Any]:
        """The ``evsite simulate --report`` document (keys are interface)."""
        doc: dict[str, Any] = {
            "limit_kw": round(self.limit_kw, 3),
            "peak_kw": round(self.peak_kw, 3),
            "seconds_over": round(self.seconds_over, 1),
            "max_excess_kw": round(self.max_excess_kw, 3),
            "violations": self.violations,
            "energy_requested_kwh": round(energy_requested_kwh, 3),
            "energy_delivered_kwh": round(energy_delivered_kwh, 3),
            "sessions": sessions,
            "sessions_served": sessions_served,
            "speed": speed,
            "response_s": self.response_s,
        }
        if with_series:
            doc["series"] = [{"t_s": t, "building_kw": b, "ev_kw": e} for t, b, e in self.series]
        return doc
