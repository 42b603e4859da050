"""The site's state at one instant and an operator's temporary site limit, shared between layers.

Why in the base: load management (``controller.loadmgmt``) produces the snapshot, the HTTP API and dashboard
(``controller.api``) and the CLI (``evsite.cli``) display it, and the demo reads it; a type several layers
need lives here. ``SiteLimitOverride`` is the payload of ``topics.LOADMGMT_SITE_LIMIT`` so the API can set a
limit that load management applies without either importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """One connector as load management sees it: its current limit and why.

    ``limit_a`` is the per-phase current limit last sent (None: no limit sent), ``reason`` a short
    human-readable cause (e.g. ``"headroom share"``, ``"plan period peak"``, ``"no profile sent"``), so every
    limit on the dashboard is traceable to its reason.
    """

    cp_id: str
    connector_id: int
    limit_a: float | None
    reason: str
    online: bool
    status: str | None
    power_kw: float | None


@dataclass(frozen=True, slots=True)
class SiteState:
    """Building, EV and total load against the site limit at ``at``.

    ``building_kw``/``total_kw``/``headroom_kw`` are None when no building reading is known; ``meter_stale``
    says the last reading is older than load management accepts (it then falls back to a safe limit).
    """

    at: datetime
    building_kw: float | None
    ev_kw: float
    total_kw: float | None
    limit_kw: float
    headroom_kw: float | None
    plan_period: str | None
    meter_stale: bool
    connectors: list[ConnectorState] = field(default_factory=list)
    #: the time-of-use tier in force (``TariffTier.label``), None when load management has no tariff
    tariff_tier: str | None = None


@dataclass(frozen=True, slots=True)
class TariffTier:
    """The time-of-use tier in force from ``since`` (payload of ``topics.LOADMGMT_TARIFF``).

    ``name`` ranks the price within its day ("off-peak" is the day's cheapest, "peak" its dearest,
    "mid-peak" between, "flat" when the day has one price); ``cheap`` is True for the day's cheapest tier,
    where load management gives cars full headroom.
    """

    name: str
    cents_per_kwh: float
    cheap: bool
    since: datetime
    tariff: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.cents_per_kwh:g} c/kWh"


@dataclass(frozen=True, slots=True)
class SiteLimitOverride:
    """A temporary site limit set by an operator: applies until ``expires_at``; ``who`` names the asker.

    Producers (the API) check it never exceeds the service's continuous rating; consumers still clamp.
    """

    limit_kw: float
    expires_at: datetime
    who: str


@dataclass(frozen=True, slots=True)
class RegulationSetpoint:
    """The regulation aggregator's wish for one connector, for load management to apply (``regulation/setpoints``).

    Why through load management: OCPP 1.6 gives a connector one TxDefaultProfile in force (the highest stack
    level wins, it is not a minimum), so two writers would override each other, and a limit load management
    lowers could be masked by an older aggregator profile. Load management sends ``min(its limit, limit_a)``
    in its own expiring live profile, with its ordering (decreases first) and fail-safe. A negative
    ``limit_a`` (discharge) is applied down to the connector's discharge bound (``ConnectorEnvelope``), and
    as 0 A on a connector that may not discharge (``evsite.discharge``).
    """

    cp_id: str
    connector_id: int
    limit_a: float
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ConnectorEnvelope:
    """What load management leaves the regulation aggregator on one connector (``loadmgmt/limits`` values).

    ``charge_a``: the most it may draw (load management's own limit; 0 without an acknowledged one).
    ``discharge_a``: the most it may feed back (>= 0; 0 unless the charger declared discharge twice and
    the site can absorb it, ``controller.loadmgmt.discharge``). Both in A per phase.
    """

    charge_a: float
    discharge_a: float = 0.0
