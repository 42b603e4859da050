"""The validated shape of ``config.toml``.

Why: operators edit this file by hand, sometimes while evsite runs. A typo must never start a controller
with a silently wrong site limit, so every key is declared here (unknown keys are errors), every value is
checked, and ``load_config`` reports each problem with its key path (``service.rating_a``) and what was
expected. The running process keeps its previous config when a reload fails (see ``evsite config``).

Each capability owns one section: ``[server]``/``[store]``/``[[chargers]]``/``[[id_tags]]`` for the OCPP
central system, ``[service]`` for the building's electrical service (NEC), ``[mqtt]`` and ``[meter]`` for
the live building load, ``[tariff]`` and ``[planning]`` for the load study, ``[regulation]`` for the
aggregator, ``[simulation]`` for the simulators, ``[api]`` for the operator HTTP API and dashboard.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` is the operator-facing message."""


class _Section(BaseModel):
    """Strict base: unknown keys are errors, assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class ServerConfig(_Section):
    """The OCPP 1.6J WebSocket endpoint."""

    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    path_prefix: str = "/ocpp"
    max_frame_bytes: int = Field(65536, ge=1024, description="larger frames are refused")
    heartbeat_interval_s: int = Field(300, ge=1)
    heartbeat_timeout_factor: float = Field(
        3.0, ge=1, description="a charger silent this many heartbeat intervals is marked offline"
    )
    max_cp_id_length: int = Field(
        20, ge=1, le=48, description="longest charge point id admitted (OCPP 1.6 CiString20; up to 48)"
    )
    auth_workers: int = Field(2, ge=1, le=64, description="password verifications run at once (one per core)")
    call_timeout_s: float = Field(30.0, gt=0, description="timeout of a central-system-initiated call")
    allow_unknown_chargers: bool = Field(False, description="auto-register unknown charge point ids")
    require_auth: bool = Field(False, description="require HTTP Basic auth (security profile 1/2)")
    tls_cert: Path | None = Field(None, description="PEM certificate: enables wss:// (security profile 2)")
    tls_key: Path | None = None
    meter_value_sample_interval_s: int = Field(60, ge=0)
    probe_every_boot: bool = Field(
        False,
        description="read capabilities and set meter sampling at every boot; false: only when unknown or the "
        "firmware changed (a 2,000-charger reconnect storm then costs no extra calls)",
    )
    meter_values_sampled_data: list[str] = Field(
        default_factory=lambda: [
            "Energy.Active.Import.Register",
            "Power.Active.Import",
            "Current.Import",
            "SoC",
        ]
    )

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with '/'")
        return v.rstrip("/") or "/"

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


class StoreConfig(_Section):
    """Where everything is persisted: SQLite file by default, PostgreSQL by URL."""

    url: str = "sqlite:///evsite.db"
    max_unsaved_s: float = Field(
        0.1,
        ge=0,
        le=60,
        description="acknowledged MeterValues/status may wait this long before commit (lost if killed); "
        "0: committed before the answer",
    )
    retention_days: int = Field(
        400,
        ge=0,
        description="meter values, events and id tags of closed transactions older than this are "
        "pruned; 0 keeps everything",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("sqlite", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql:// SQLAlchemy URL")
        return v


class ChargerConfig(_Section):
    """A charge point the site knows. Electrical facts are per charger: never assume 230 V."""

    id: str = Field(min_length=1, max_length=48)
    password_hash: str | None = Field(None, description="hash from `evsite config hash-password`")
    connectors: int = Field(1, ge=1, le=16)
    max_current_a: float = Field(32.0, gt=0)
    voltage_v: float = Field(230.0, gt=0)
    phases: Literal[1, 3] = 3
    bidirectional: bool = False
    circuit: str | None = Field(None, description="id of the [[site.panels]] node it is wired to (None: the service)")
    phase_map: list[Literal["L1", "L2", "L3"]] | None = Field(
        None, description="service phases the charger's phases are wired to (default L1..L<phases>)"
    )
    fail_safe_a: float | None = Field(None, ge=0, description="fail-safe current per phase (None: [site])")
    no_pause: bool = Field(False, description="its cars do not resume after a 0 A pause: never pause it")

    @model_validator(mode="after")
    def _phase_map(self) -> ChargerConfig:
        if self.phase_map is not None and (
            len(self.phase_map) != self.phases or len(set(self.phase_map)) != len(self.phase_map)
        ):
            raise ValueError(f"phase_map must name {self.phases} distinct phase(s) (L1, L2, L3)")
        return self


class IdTagConfig(_Section):
    id_tag: str = Field(min_length=1, max_length=20)
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] = "Accepted"
    expiry_date: str | None = Field(None, description="RFC 3339, with a time zone")
    parent_id_tag: str | None = Field(None, max_length=20)

    @field_validator("expiry_date")
    @classmethod
    def _expiry(cls, v: str | None) -> str | None:
        """A tag's expiry is compared with the (UTC) clock: a time without a zone would be ambiguous."""
        if v is None:
            return v
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError("expected an RFC 3339 time such as 2027-01-01T00:00:00Z") from None
        if parsed.tzinfo is None:
            raise ValueError("expected a time zone (Z or +hh:mm)")
        return v


def service_kw(current_a: float, voltage_v: float, phases: int) -> float:
    """Power of a service in kW: ``voltage_v`` is line-to-line, so a three-phase service carries sqrt(3) V I.

    The one place this conversion lives. (Charger-side conversions use the phase voltage times the number of
    phases instead, as OCPP charge points report it; the two conventions must not be mixed.)
    """
    return current_a * voltage_v * (3**0.5 if phases == 3 else 1.0) / 1000.0


class ServiceConfig(_Section):
    """The building's electrical service, as NEC 220.87 / 625.42 need it."""

    rating_a: float = Field(400.0, gt=0)
    voltage_v: float = Field(208.0, gt=0, description="line-to-line for three-phase services")
    phases: Literal[1, 3] = 3
    continuous_load_factor: float = Field(0.8, gt=0, le=1)
    evse_rating_a: float | None = Field(32.0, gt=0)
    evse_rating_kw: float | None = Field(None, gt=0)
    evse_voltage_v: float = Field(208.0, gt=0)
    existing_evse_count: int = Field(0, ge=0)
    nec_edition: Literal[2014, 2017, 2020, 2023] = Field(
        2023, description="NEC edition of the load calculation; 2020+ counts each EVSE at >= 7.2 kW (220.57)"
    )
    power_factor: float | None = Field(
        None, gt=0, le=1, description="building power factor (kW / kVA); None: unknown, taken as 1.0 with a warning"
    )

    @property
    def rating_kw(self) -> float:
        """Service rating in kW through its real voltage and phase count."""
        return service_kw(self.rating_a, self.voltage_v, self.phases)


class MqttConfig(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    meter_topic: str = "evsite/site/meter"
    regulation_topic: str = "evsite/site/regulation"
    client_id: str | None = None


class MeterConfig(_Section):
    """Live building meter: how stale a reading may be before it counts as an overload."""

    stale_after_s: float = Field(30.0, gt=0)


class TariffConfig(_Section):
    """Time-of-use prices (cents/kWh), dated tiers, or a tariff JSON file."""

    customer: Literal["residential", "business"] = "business"
    file: Path | None = None
    tier_starts: list[str] = Field(default_factory=lambda: ["01-01", "07-01", "10-01"], description="MM-DD")
    residential: list[list[float]] | None = None
    business: list[list[float]] | None = None
    demand_charge_usd_per_kw_month: float = Field(
        0.0, ge=0, description="$/kW on each month's highest site demand (building + EV), besides energy prices"
    )


class PlanningConfig(_Section):
    """The load study and charger plan (``evsite plan``); see planning/ for the rules behind each field."""

    method: Literal["evsite", "seed"] = "evsite"
    k_min: int = Field(2, ge=2)
    k_max: int = Field(30, ge=2)
    random_state: int = 0
    baseload: Literal["max_median", "percentile"] = "max_median"
    baseload_percentile: float = Field(95.0, gt=0, le=100)
    curtailment: bool = True
    setpoint_min_kw: float = Field(3.0, ge=0)
    setpoint_max_kw: float = Field(6.6, gt=0)
    safety_factor: float = Field(1.1, ge=1)
    ev_energy_kwh_per_day: float | None = Field(
        None, ge=0, description="expected EV energy per charger per day (kWh); overrides ev_sessions_file"
    )
    ev_sessions_file: Path | None = Field(None, description="ACN-style session CSV for energy and plug-in hours")
    building_type: str | None = None
    floor_area_m2: float | None = Field(None, gt=0)
    site_timezone: str | None = Field(
        None, description="IANA zone of the site: a 'day' of the load profile is a local day (e.g. America/New_York)"
    )
    data_timezone: str | None = Field(None, description="zone of naive meter timestamps (None: site local time)")
    meter_unit: Literal["kW", "kWh", "W", "Wh"] | None = Field(
        None, description="None: detect (a 'kwh' column/file name)"
    )
    zero_run_min_h: float = Field(1.0, gt=0, description="zero runs this long (h) in a loaded building = outage")
    outlier_k: float = Field(6.0, gt=0, description="robust-sigma excess beyond which an isolated reading is a spike")
    max_fill_h: float = Field(3.0, ge=0, description="missing runs up to this long (h) are interpolated")
    rating_a_by_meter: dict[str, float] = Field(
        default_factory=dict, description="per-meter service rating (A) overriding service.rating_a in a batch"
    )
    workers: int = Field(2, ge=1, description="processes for a many-building plan")
    static_percentile: float = Field(
        100.0,
        ge=50,
        le=100,
        description="the static EV ceiling holds against this percentile of each hour's load over the year; "
        "100 = every hour; below 100 only with live load management catching the remaining hours",
    )
    keep_spikes: bool = Field(False, description="keep readings the spike/dropout rules flag (reported as suspect)")
    allow_export: bool = Field(False, description="accept negative (net-export) readings; they are reported")
    service_level_sessions: float = Field(0.95, gt=0, le=1, description="share of sessions that must be served")
    service_level_energy: float = Field(
        0.95, gt=0, le=1, description="share of its requested energy a session must get to count as served"
    )
    max_chargers: int = Field(500, ge=1, description="largest charger count the sizing simulation tries")

    @field_validator("site_timezone", "data_timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r} (expected an IANA name like Europe/London)") from None
        return v

    @model_validator(mode="after")
    def _ranges(self) -> PlanningConfig:
        if self.k_max < self.k_min:
            raise ValueError("k_max must be >= k_min")
        if self.setpoint_max_kw < self.setpoint_min_kw:
            raise ValueError("setpoint_max_kw must be >= setpoint_min_kw")
        return self


class RegulationConfig(_Section):
    """``[regulation]``: the aggregator (``evsite regulate`` and the live service). ``step_s`` is the old
    mode-switching loop's step and the model's period; the hourly-market loop steps at the signal's 2 s."""

    enabled: bool = False
    soc_bins: int = Field(20, ge=2)
    step_s: float = Field(4.0, gt=0)
    a_update_period_s: float = Field(100.0, gt=0)
    learning_rate: float = Field(0.1, ge=0, le=1)
    capacity_horizon_s: float = Field(300.0, gt=0)
    signal_file: Path | None = None
    soc_force_charge: float = Field(0.15, ge=0, le=1, description="below this SoC a car is forced to charge")
    slack_margin_s: float = Field(
        2700.0, ge=0, description="plan every car to reach its demand this long before its estimated departure"
    )
    min_hold_s: float = Field(300.0, ge=0, description="least time between two mode switches of a car")
    latency_median_s: float = Field(2.0, gt=0, description="OCPP command round trip, median (simulation)")
    latency_p99_s: float = Field(10.0, gt=0, description="OCPP command round trip, 99th percentile (simulation)")
    command_loss_share: float = Field(0.01, ge=0, le=1, description="share of commands rejected or lost")
    meter_interval_s: float = Field(30.0, ge=10, description="MeterValues interval of each car")
    meter_delay_s: float = Field(5.0, ge=0, description="how late a car's meter value reaches the controller")
    soc_cv: float = Field(0.8, gt=0, le=1, description="SoC above which charging tapers (constant voltage)")
    safety_margin: float = Field(0.1, ge=0, lt=1, description="share of the forecast capacity not offered")
    departure_sd_s: float = Field(900.0, ge=0, description="drivers leave this spread around the estimate")
    early_share: float = Field(0.1, ge=0, le=1, description="share of drivers leaving 30-90 min early")

    @model_validator(mode="after")
    def _latency(self) -> RegulationConfig:
        if self.latency_p99_s < self.latency_median_s:
            raise ValueError("latency_p99_s must be >= latency_median_s")
        return self


class PanelConfig(_Section):
    """A panel or circuit of the site tree: a per-phase current limit below its ``parent`` (None: the service)."""

    id: str = Field(min_length=1, max_length=48)
    parent: str | None = None
    rating_a: float = Field(gt=0, description="breaker / busbar rating per phase (A)")
    voltage_v: float = Field(230.0, gt=0, description="phase-to-neutral voltage at this level")
    phases: Literal[1, 3] = 3
    phase_map: list[Literal["L1", "L2", "L3"]] | None = Field(None, description="service phases it is fed from")
    continuous_load_factor: float = Field(0.8, gt=0, le=1)


class SiteConfig(_Section):
    """Automatic load management (NEC 625.42): the site tree, the plan, the loop and the fail-safe."""

    enabled: bool = Field(True, description="run load management in `evsite serve`")
    plan: Path | None = Field(None, description="plan.json of `evsite plan` (hourly EV ceiling); reloaded on change")
    plan_building: str | None = Field(None, description="which building of plan.json (default: the first)")
    timezone: str = Field("UTC", description="IANA zone of the site: plan hours and day types are local")
    policy: Literal["equal", "priority", "edf", "llf", "mpc"] = "equal"
    response_s: float = Field(5.0, gt=0, description="longest time the site may be over its limit")
    limit_kw: float | None = Field(None, gt=0, description="site limit below the continuous rating (None: rating)")
    building_peak_kw: float | None = Field(
        None, ge=0, description="highest building load the fail-safe must allow for (None: the plan's max demand)"
    )
    reserve_kw: float = Field(2.0, ge=0, description="kept free under the limit for the load change between readings")
    export_limit_kw: float = Field(
        0.0, ge=0, description="most the site may feed back into the grid (EV discharge beyond the building's load)"
    )
    fail_safe_a: float | None = Field(
        None, ge=0, description="per-phase fail-safe current (None: sized so every connector at it fits)"
    )
    profile_validity_s: float = Field(120.0, gt=0, description="live profiles expire this long after being sent")
    period_s: float = Field(60.0, gt=0, description="allocation runs at least this often")
    debounce_s: float = Field(1.0, ge=0, description="events within this window share one allocation")
    min_current_a: float = Field(6.0, ge=0, description="J1772 minimum: below it a connector is paused")
    departure_default_h: float = Field(8.0, gt=0, description="assumed stay when nothing better is known")
    live_stack_level: int = Field(2, ge=1, description="stack level of live limits (fail-safe is at 0)")
    noncompliance_tolerance_a: float = Field(2.0, ge=0)
    readback: bool = Field(True, description="GetCompositeSchedule after a new limit, mismatches flagged")
    ev_only_meter: bool = Field(
        False, description="no building on this service: building load is 0 (EVs from chargers)"
    )
    meter_includes_evs: bool = Field(
        False, description="the site meter measures building + chargers: the chargers' metered load is subtracted"
    )
    replan_cron: str = Field("0 3 * * *", description="daily re-plan time (cron, site time zone)")
    replan_own_history_days: float = Field(
        365.0,
        gt=0,
        description="the daily re-plan uses the stored building meter alone once it covers this many days; "
        "before, its ceiling is never above the plan's (study data merged in)",
    )
    tariff_hold: bool = Field(
        True,
        description="outside the cheapest time-of-use tier, a car whose departure and energy are known is held to "
        "what its deadline needs; cheap tiers get full headroom",
    )
    departure_margin_min: float = Field(
        30.0, ge=0, description="a car held in an expensive tier is planned to finish this long before departure"
    )
    min_real_s: float = Field(
        1.0,
        ge=0,
        description="on an accelerated clock, response_s and [meter] stale_after_s are at least this many REAL "
        "seconds (x the clock's speed): network latency does not speed up with the simulation",
    )
    state_topic: str = Field("evsite/site/state", description="MQTT topic of the site state ([mqtt] enabled)")
    panels: list[PanelConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (expected an IANA name like America/Los_Angeles)") from None
        return v


class SimulationConfig(_Section):
    """``evsite simulate``: simulated chargers, their EVs and a building meter (flags override these)."""

    speed: float = Field(60.0, gt=0, description="simulated seconds per real second")
    seed: int = 0
    url: str | None = Field(
        None, description="central system URL; default ws://<server.host>:<server.port><path_prefix>"
    )
    chargers: int = Field(10, ge=1, le=100_000)
    connectors: int = Field(2, ge=1, le=16)
    hours: float = Field(24.0, gt=0, description="simulated duration, then a summary")
    step_s: float = Field(10.0, gt=0, le=3600, description="simulated seconds per physics step")
    voltage_v: float = Field(230.0, gt=0, description="phase-to-neutral voltage of the simulated chargers")
    phases: Literal[1, 3] = 3
    max_current_a: float = Field(32.0, gt=0)
    meter_interval_s: int = Field(60, ge=0, description="MeterValueSampleInterval until the central system sets one")
    fleet: Literal["seed", "behaviour", "sessions"] = Field("seed", description="seed study, ElaadNL, or ACN replay")
    sessions_csv: Path | None = Field(None, description="ACN-Data session CSV for fleet = sessions")
    id_tag: str = Field("SIM-TAG", min_length=1, max_length=20, description="idTag the simulated drivers present")
    meter_csv: Path | None = Field(None, description="building meter CSV to replay (else a synthetic office week)")
    meter_column: str | None = Field(None, description="load column of meter_csv (kW, or kWh per hour)")


class ApiTokenConfig(_Section):
    """One bearer token of the HTTP API, kept only as its SHA-256 digest (``evsite config new-token``).

    A random 32-byte token needs no slow hash: guessing it is as hard as guessing the digest's preimage.
    """

    name: str = Field(min_length=1, max_length=64, description="who holds it; recorded with every write")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 digest of the token")
    role: Literal["read", "operator"] = "read"


class ApiConfig(_Section):
    """The operator HTTP API and dashboard (``evsite serve``); TLS uses ``[server] tls_cert``/``tls_key``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tokens: list[ApiTokenConfig] = Field(default_factory=list)
    history_hours: float = Field(6.0, gt=0, le=168, description="load history kept for the dashboard's chart")
    max_site_limit_minutes: float = Field(24 * 60.0, gt=0, description="longest temporary site limit")

    @model_validator(mode="after")
    def _unique_names(self) -> ApiConfig:
        names = [t.name for t in self.tokens]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"token name(s) listed twice: {', '.join(dup)}")
        return self


class Config(_Section):
    """The whole ``config.toml``."""

    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    chargers: list[ChargerConfig] = Field(default_factory=list)
    id_tags: list[IdTagConfig] = Field(default_factory=list)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    site: SiteConfig = Field(default_factory=SiteConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    meter: MeterConfig = Field(default_factory=MeterConfig)
    tariff: TariffConfig = Field(default_factory=TariffConfig)
    planning: PlanningConfig = Field(default_factory=PlanningConfig)
    regulation: RegulationConfig = Field(default_factory=RegulationConfig)
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)

    @model_validator(mode="after")
    def _unique_ids(self) -> Config:
        seen: set[str] = set()
        for c in self.chargers:
            if c.id in seen:
                raise ValueError(f"charger id {c.id!r} is listed twice")
            seen.add(c.id)
        self._site_tree()
        return self

    def _site_tree(self) -> None:
        """Panels form a tree under the service; every reference resolves (errors name the key)."""
        site = self.site
        ids: dict[str, int] = {}
        for i, p in enumerate(site.panels):
            if p.id in ids:
                raise ValueError(f"site.panels.{i}.id: panel {p.id!r} is listed twice")
            ids[p.id] = i
        for i, p in enumerate(site.panels):
            if p.parent is not None and p.parent not in ids:
                raise ValueError(f"site.panels.{i}.parent: unknown panel {p.parent!r}")
        for i, p in enumerate(site.panels):
            seen = {p.id}
            node = p
            while node.parent is not None:
                if node.parent in seen:
                    raise ValueError(f"site.panels.{i}.parent: cycle through panel(s) {' -> '.join(sorted(seen))}")
                seen.add(node.parent)
                node = site.panels[ids[node.parent]]
        for i, c in enumerate(self.chargers):
            if c.circuit is not None and c.circuit not in ids:
                raise ValueError(f"chargers.{i}.circuit: unknown panel {c.circuit!r} (list it in [[site.panels]])")
        continuous_kw = self.service.rating_kw * self.service.continuous_load_factor
        if site.limit_kw is not None and site.limit_kw > continuous_kw + 1e-9:
            raise ValueError(
                f"site.limit_kw: {site.limit_kw:g} kW is above the service's continuous rating "
                f"{continuous_kw:.1f} kW (continuous_load_factor x rating)"
            )


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: ``source: key.path: what was expected (got value)``."""
    lines = [f"{source}: invalid configuration ({err.error_count()} problem(s))"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not part of the evsite config schema)"
        got = e.get("input")
        shown = "" if e["type"] in ("missing", "extra_forbidden") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {path}: {msg}{shown}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], source: str = "config") -> Config:
    """Validate an already-parsed TOML document."""
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def parse_config_text(text: str, source: str = "config") -> Config:
    """Parse and validate TOML text (TOML syntax errors carry line and column)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    return parse_config(data, source)


def load_config(path: str | Path | None) -> Config:
    """Load ``path`` (or the defaults when None). Raises ConfigError with an operator-facing message."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot read config file: {err.strerror}") from None
    return parse_config_text(text, str(p))
