"""The site as load management sees it: connectors with their electrical facts, and ``A @ x <= b`` over them.

Why built from config each time the charger set changes: the allocation core (``planning.allocation``) knows
only rows and coefficients; what a row *is* (the service's phase L2, panel P1's phase L1, the service in kW,
the plan's EV ceiling) is decided here, once, from ``[service]``, ``[[site.panels]]`` and ``[[chargers]]``.

Units: ``x`` is each connector's current in A per phase. A current row (a phase conductor of the service or a
panel) counts 1 for every connector wired to that phase below that node. A kW row counts the connector's
``voltage_v x phases / 1000`` (the charger's real phase voltage). The service has both: per-phase rows at
``continuous_load_factor x rating_a`` and a kW row at the site limit (``continuous_load_factor x rating_kw``,
or a lower ``[site] limit_kw``), because a charger's phase voltage need not match the service's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from evsite.config import ChargerConfig, Config, PanelConfig, service_kw
from planning.allocation.model import Constraints, FloatArray

PHASES = ("L1", "L2", "L3")
SERVICE_KW_ROW = "service kW"
PLAN_ROW = "plan EV ceiling kW"
OVERRIDE_ROW = "operator site limit kW"


@dataclass(frozen=True)
class ConnectorSpec:
    """One connector's electrical facts (from its charger's config entry, or the defaults for unknown ones)."""

    cp_id: str
    connector_id: int
    voltage_v: float
    phases: int
    phase_map: tuple[int, ...]  # indices into PHASES of the service phases it draws from
    max_a: float
    circuit: str | None
    fail_safe_a: float | None
    no_pause: bool

    @property
    def key(self) -> str:
        return f"{self.cp_id}/{self.connector_id}"

    @property
    def kw_per_a(self) -> float:
        return self.voltage_v * self.phases / 1000.0


def connectors_of(charger: ChargerConfig, connectors: int | None = None) -> list[ConnectorSpec]:
    """The connectors of one charger (``connectors`` overrides the configured count, e.g. from NumberOfConnectors)."""
    names = charger.phase_map or list(PHASES[: charger.phases])
    phase_map = tuple(PHASES.index(n) for n in names)
    return [
        ConnectorSpec(
            cp_id=charger.id,
            connector_id=c,
            voltage_v=charger.voltage_v,
            phases=charger.phases,
            phase_map=phase_map,
            max_a=charger.max_current_a,
            circuit=charger.circuit,
            fail_safe_a=charger.fail_safe_a,
            no_pause=charger.no_pause,
        )
        for c in range(1, (connectors or charger.connectors) + 1)
    ]


def continuous_limit_kw(config: Config) -> float:
    """The highest site limit any path may set: ``continuous_load_factor x rating_kw`` (NEC 625.42)."""
    return config.service.rating_kw * config.service.continuous_load_factor


def site_limit_kw(config: Config, override_kw: float | None = None) -> float:
    """The limit in force: the continuous rating, lowered by ``[site] limit_kw`` and an operator override."""
    limits = [continuous_limit_kw(config)]
    if config.site.limit_kw is not None:
        limits.append(config.site.limit_kw)
    if override_kw is not None:
        limits.append(override_kw)
    return min(limits)


def _descendants(panels: Sequence[PanelConfig]) -> dict[str, set[str]]:
    """For each panel, the ids of the panels at or below it (the config validator has ruled out cycles)."""
    parent = {p.id: p.parent for p in panels}
    below: dict[str, set[str]] = {p.id: {p.id} for p in panels}
    for pid in parent:
        node = parent[pid]
        while node is not None:
            below[node].add(pid)
            node = parent[node]
    return below


def build_constraints(config: Config, connectors: Sequence[ConnectorSpec], limit_kw: float) -> Constraints:
    """Service phases, service kW, every panel's phases: the rows every allocation must respect."""
    svc = config.service
    n = len(connectors)
    rows: list[np.ndarray] = []
    b: list[float] = []
    names: list[str] = []
    uses = np.zeros((len(PHASES), n))
    for i, c in enumerate(connectors):
        uses[[p % svc.phases for p in c.phase_map], i] = 1.0
    for ph in range(svc.phases):
        rows.append(uses[ph])
        b.append(svc.continuous_load_factor * svc.rating_a)
        names.append(f"service {PHASES[ph]}")
    rows.append(np.array([c.kw_per_a for c in connectors], dtype=float))
    b.append(limit_kw)
    names.append(SERVICE_KW_ROW)
    below = _descendants(config.site.panels)
    for panel in config.site.panels:
        under = np.array([c.circuit in below[panel.id] for c in connectors], dtype=bool)
        feeds = panel.phase_map or list(PHASES[: panel.phases])
        for name in feeds:
            ph = PHASES.index(name) % svc.phases
            rows.append(uses[ph] * under)
            b.append(panel.continuous_load_factor * panel.rating_a)
            names.append(f"panel {panel.id} {name}")
    A = np.vstack(rows) if rows else np.zeros((0, n))
    return Constraints(A=A, b=np.asarray(b, float), names=tuple(names), connectors=tuple(c.key for c in connectors))


def building_load(constraints: Constraints, config: Config, building_kw: float) -> FloatArray:
    """The building's load in each row's unit: amps per service phase (balanced), kW on the service kW row.

    Panels and the plan row carry no building load: panels are the EV circuits, the plan ceiling is EV-only.
    """
    svc = config.service
    amps = building_kw / service_kw(1.0, svc.voltage_v, svc.phases) if building_kw > 0 else 0.0
    out = np.zeros(len(constraints.names))
    for k, name in enumerate(constraints.names):
        if name.startswith("service L"):
            out[k] = amps
        elif name == SERVICE_KW_ROW:
            out[k] = building_kw
    return out


def uniform_safe_current_a(constraints: Constraints, uncontrolled: FloatArray, min_a: float) -> float:
    """The highest current every connector may draw at once with every row still within its limit.

    Below the J1772 minimum a current is useless, so the answer is then 0 A (cars pause).
    """
    rowsum = constraints.A.sum(axis=1)
    room = constraints.b - uncontrolled
    with np.errstate(divide="ignore", invalid="ignore"):
        per_row = np.where(rowsum > 0, room / np.where(rowsum > 0, rowsum, 1.0), np.inf)
    u = float(per_row.min(initial=np.inf))
    if not math.isfinite(u):
        return 0.0
    u = math.floor(max(u, 0.0) * 10.0) / 10.0
    return u if u >= min_a else 0.0


def specs_for(config: Config, seen: Iterable[tuple[str, int]]) -> list[ConnectorSpec]:
    """Configured chargers' connectors, plus connectors of unknown chargers seen on the wire (default ratings)."""
    specs = [s for ch in config.chargers for s in connectors_of(ch)]
    known = {(s.cp_id, s.connector_id) for s in specs}
    configured = {ch.id for ch in config.chargers}
    for cp_id, conn in sorted(set(seen) - known):
        if conn < 1:
            continue
        base = next((ch for ch in config.chargers if ch.id == cp_id), None) if cp_id in configured else None
        charger = base or ChargerConfig(id=cp_id)
        specs.extend(s for s in connectors_of(charger, conn) if s.connector_id == conn)
    return specs
