"""What load management knows about each connector: its session, its meter, and what it may be drawing.

Why "assumed" and not "sent": a limit the charger has not acknowledged may or may not be in force, so until
the answer comes the connector is assumed to draw the *higher* of its old and new limit; an offline charger
keeps its last live limit until that profile's ``validTo``, then its fail-safe; a connector whose state is
unknown (the controller just started) is assumed at its maximum. Every allocation subtracts these draws
before granting anything (``Sessions.fixed_a``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from controller.loadmgmt.site_model import ConnectorSpec


@dataclass
class ConnectorTrack:
    spec: ConnectorSpec
    online: bool = False
    status: str | None = None
    tx_id: int | None = None
    id_tag: str | None = None
    tx_start: datetime | None = None
    meter_start_wh: float | None = None
    energy_wh: float | None = None
    power_w: float | None = None
    measured_a: float | None = None
    #: the limit the charger may be applying (None: unknown, i.e. up to its maximum)
    assumed_a: float | None = None
    #: True while a limit was sent and not acknowledged (or the answer was lost)
    unacked: bool = False
    valid_until: datetime | None = None
    reason: str = "no limit sent yet"
    departure: datetime | None = None  # set on the bus (driver app, operator): wins over the estimate
    departure_estimate: datetime | None = None
    departure_basis: str = ""
    energy_requested_kwh: float = math.nan
    over_since: datetime | None = None
    noncompliant: bool = False
    limit_changed_at: datetime | None = None
    previous_a: float | None = None
    flags: set[str] = field(default_factory=set)
    #: a profile someone else sent (operator, another system) that the charger accepted: what it allows (A),
    #: why, and whether it is a TxProfile (ends with the transaction) rather than a lasting TxDefaultProfile
    foreign_a: float | None = None
    foreign_reason: str = ""
    foreign_tx_only: bool = False
    #: paused (below the minimum) while its car was charging, and when it was given current again
    paused_mid_session: bool = False
    resumed_at: datetime | None = None
    #: the regulation aggregator's latest setpoint for this connector (A) and when it came: load management
    #: sends min(its own limit, this) while it is fresh (``manager.LoadManager._regulated``)
    regulation_a: float | None = None
    #: load management's own limit in the last round, before a regulation setpoint lowered it
    granted_a: float | None = None
    regulation_at: datetime | None = None
    regulation_reason: str = ""

    @property
    def active(self) -> bool:
        return self.tx_id is not None

    def energy_delivered_kwh(self) -> float:
        if self.energy_wh is None or self.meter_start_wh is None:
            return 0.0
        return max(self.energy_wh - self.meter_start_wh, 0.0) / 1000.0

    def in_force_a(self, now: datetime, fail_safe_a: float) -> float | None:
        """The limit the charger applies now (None: unknown). Once the live profile's ``validTo`` has passed the
        fail-safe governs; around that instant either may, so the higher one is taken."""
        if self.assumed_a is None:
            return None
        if self.valid_until is not None and now >= self.valid_until:
            return max(self.assumed_a, fail_safe_a)
        return self.assumed_a

    def may_draw_a(self, now: datetime, fail_safe_a: float) -> float:
        """The most this connector may draw now, as far as the controller can tell."""
        live = self.in_force_a(now, fail_safe_a)
        if live is None:
            return self.spec.max_a
        drawn = self.measured_a if (self.noncompliant and self.measured_a is not None) else 0.0
        return max(live, drawn, self.foreign_a or 0.0)

    def limit_for_compliance(self, at: datetime, response_s: float) -> float | None:
        """The limit a meter sample at ``at`` must respect (the old one too, within the response time)."""
        if self.assumed_a is None:
            return None
        if self.limit_changed_at is not None and self.previous_a is not None:
            if (at - self.limit_changed_at).total_seconds() < response_s:
                return max(self.assumed_a, self.previous_a)
        return self.assumed_a

    def set_limit(self, amps: float, at: datetime, valid_until: datetime | None, reason: str) -> None:
        """An acknowledged limit (``at``: when the acknowledgement came, the start of the response time)."""
        if self.assumed_a is None or abs(amps - self.assumed_a) > 1e-9:
            self.previous_a = self.assumed_a
            self.limit_changed_at = at
        self.assumed_a = amps
        self.unacked = False
        self.valid_until = valid_until
        self.reason = reason

    def unconfirmed(self, amps: float, reason: str) -> None:
        """A limit sent without an answer: it may or may not be in force, so the higher one is assumed."""
        self.assumed_a = None if self.assumed_a is None else max(self.assumed_a, amps)
        self.unacked = True
        self.reason = f"not acknowledged ({reason})"

    def clear_session(self) -> None:
        if self.foreign_tx_only:
            self.foreign_a, self.foreign_reason, self.foreign_tx_only = None, "", False
        self.paused_mid_session = False
        self.resumed_at = None
        self.tx_id = None
        self.id_tag = None
        self.tx_start = None
        self.meter_start_wh = None
        self.departure = None
        self.departure_estimate = None
        self.departure_basis = ""
        self.energy_requested_kwh = math.nan
