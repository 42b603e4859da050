"""The envelope load management leaves the aggregator: the latest per-connector limits it granted.

Contract (issue 12): load management publishes on ``evsite.topics.LOADMGMT_LIMITS`` a frozen mapping
``{(cp_id, connector_id): ConnectorEnvelope}`` (``evsite.site_state``) each time its limits change: the
most each connector may draw (``charge_a``) and feed back (``discharge_a``). A bare number is read as a
charging limit with no discharge. The aggregator keeps only the latest mapping and never commands a
connector outside it; a connector with no grant yet (or no mapping at all) gets no command. Limits are
amperes per phase, like the profiles the aggregator sends.
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
from evsite.site_state import ConnectorEnvelope

logger = logging.getLogger("evsite.controller.aggregator.limits")


def _envelope(value: object) -> ConnectorEnvelope:
    if isinstance(value, ConnectorEnvelope):
        return ConnectorEnvelope(max(float(value.charge_a), 0.0), max(float(value.discharge_a), 0.0))
    return ConnectorEnvelope(max(float(value), 0.0), 0.0)  # type: ignore[arg-type]


class LimitGate:
    """Follows ``loadmgmt/limits`` on the bus; ``clamp``, ``limit_kw`` and ``discharge_kw`` apply the grant."""

    def __init__(self, bus: EventBus) -> None:
        self._sub = bus.subscribe(topics.LOADMGMT_LIMITS)
        self.granted: Mapping[tuple[str, int], ConnectorEnvelope] = {}
        self.received = False

    def poll(self) -> bool:
        """Take the newest published mapping (True when one arrived); a malformed one is logged and ignored."""
        changed = False
        while (item := self._sub.get_nowait()) is not None:
            payload = item[1]
            try:
                grant = {(str(cp), int(c)): _envelope(v) for (cp, c), v in dict(payload).items()}
            except (TypeError, ValueError) as err:
                log_event(logger, "loadmgmt_limits_ignored", logging.WARNING, why=f"not a limit mapping: {err}")
                continue
            self.granted, self.received, changed = grant, True, True
        return changed

    def clamp(self, ref: ConnectorRef, limit_a: float) -> float | None:
        """``limit_a`` within the envelope of ``ref``: None when nothing was granted (send nothing).

        A charging limit is capped at ``charge_a``; a discharge (negative) limit at ``-discharge_a`` (0 for a
        connector load management does not let discharge); 0 stays 0.
        """
        g = self.granted.get((ref.cp_id, ref.connector_id))
        if g is None:
            return None
        return float(np.clip(limit_a, -g.discharge_a, g.charge_a))

    def _kw(self, refs: Sequence[ConnectorRef], discharge: bool) -> NDArray[np.float64]:
        none = ConnectorEnvelope(0.0, 0.0)
        env = [self.granted.get((ref.cp_id, ref.connector_id), none) for ref in refs]
        amps = [e.discharge_a if discharge else e.charge_a for e in env]
        return np.array([ref.power_kw(a) for ref, a in zip(refs, amps, strict=True)])

    def limit_kw(self, refs: Sequence[ConnectorRef]) -> NDArray[np.float64]:
        """The charging grant of each connector in kW (0 without one): the ``Tracker.limit_kw`` of a live site."""
        return self._kw(refs, discharge=False)

    def discharge_kw(self, refs: Sequence[ConnectorRef]) -> NDArray[np.float64]:
        """The discharge bound of each connector in kW (0 without one, or when it may not discharge)."""
        return self._kw(refs, discharge=True)
