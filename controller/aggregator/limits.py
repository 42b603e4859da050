"""The envelope load management leaves the aggregator: the latest per-connector limits it granted.

Contract (issue 12): load management publishes on ``evsite.topics.LOADMGMT_LIMITS`` a frozen mapping
``{(cp_id, connector_id): limit_a}`` each time its limits change. The aggregator keeps only the latest
mapping and never commands a connector above its granted limit; a connector with no grant yet (or no
mapping at all) gets no command. Limits are amperes per phase, like the profiles the aggregator sends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from controller.aggregator.dispatch import ConnectorRef
from evsite import topics
from evsite.bus import EventBus
from evsite.log import log_event

logger = logging.getLogger("evsite.controller.aggregator.limits")


class LimitGate:
    """Follows ``loadmgmt/limits`` on the bus; ``clamp`` and ``limit_kw`` apply the latest grant."""

    def __init__(self, bus: EventBus) -> None:
        self._sub = bus.subscribe(topics.LOADMGMT_LIMITS)
        self.granted: Mapping[tuple[str, int], float] = {}
        self.received = False

    def poll(self) -> bool:
        """Take the newest published mapping (True when one arrived); a malformed one is logged and ignored."""
        changed = False
        while (item := self._sub.get_nowait()) is not None:
            payload = item[1]
            try:
                grant = {(str(cp), int(c)): float(a) for (cp, c), a in dict(payload).items()}
            except (TypeError, ValueError) as err:
                log_event(logger, "loadmgmt_limits_ignored", logging.WARNING, why=f"not a limit mapping: {err}")
                continue
            self.granted, self.received, changed = grant, True, True
        return changed

    def clamp(self, ref: ConnectorRef, limit_a: float) -> float | None:
        """``limit_a`` within the grant of ``ref``: None when nothing was granted (send nothing).

        A charging limit is capped at the grant; a discharge (negative) limit is capped in magnitude by it
        too (the site limit bounds current either way); 0 stays 0.
        """
        g = self.granted.get((ref.cp_id, ref.connector_id))
        if g is None:
            return None
        g = max(g, 0.0)
        return float(np.clip(limit_a, -g, g))

    def limit_kw(self, refs: Sequence[ConnectorRef]) -> NDArray[np.float64]:
        """The grant of each connector in kW (0 without a grant): the ``Tracker.limit_kw`` of a live site."""
        return np.array([ref.power_kw(max(self.granted.get((ref.cp_id, ref.connector_id), 0.0), 0.0))
                         for ref in refs])  # fmt: skip
