"""OCPP 1.6 smart charging (section 3.13) as pure functions: profiles, stacking, the composite schedule.

Why a pure module: the charge point simulator must obey the spec *exactly* (the controller is tested against
it), and the stacking rules are subtle enough to deserve a table of test cases without a socket in sight.
The simulator's power draw and its GetCompositeSchedule answer both come from ``limit_at``/``composite``
below, so what a charger reports is what it does.

The rules implemented (OCPP 1.6 edition 2, section 3.13 and the SetChargingProfile/ChargingProfile types):

- Purposes: ``ChargePointMaxProfile`` (connector 0 only: a cap on the whole charge point),
  ``TxDefaultProfile`` (connector 0 = default for every connector, or one connector, which then takes
  precedence over the connector-0 default) and ``TxProfile`` (one connector, only while a transaction runs;
  removed when it ends; a ``transactionId`` that is not the running transaction is rejected).
- Within a purpose, the valid profile (``validFrom <= t < validTo``, inside its schedule ``duration``) with
  the highest ``stackLevel`` wins; when it does not cover ``t`` the next lower level applies (3.13.2).
- A new profile replaces one with the same ``chargingProfileId``, or with the same purpose, stack level and
  connector (3.13.2, "replace").
- Kinds: ``Absolute`` (periods from ``startSchedule``, else from when it was received), ``Relative``
  (periods from the transaction start; before a transaction, from ``t``), ``Recurring`` (``Daily`` or
  ``Weekly`` repetition of ``startSchedule``; a schedule that crosses midnight simply continues into the
  next day).
- Composite for connector N: ``min(ChargePointMaxProfile, TxProfile if one applies else TxDefaultProfile,
  connector rating)``. Composite for connector 0: ``min(ChargePointMaxProfile, sum of the connectors'
  limits)`` (the expected consumption of the grid connection).
- Units: a limit in A is per phase; ``W = A x voltage x phases``, with the charger's real phase voltage and
  the period's ``numberPhases`` (default 3, never more than the charger has). Never a constant 230 V.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Purpose = Literal["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]
Kind = Literal["Absolute", "Relative", "Recurring"]
Unit = Literal["A", "W"]

PURPOSES: tuple[str, ...] = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
RECURRENCE_S = {"Daily": 86_400.0, "Weekly": 7 * 86_400.0}
DEFAULT_PHASES = 3  # OCPP 1.6: numberPhases absent means 3


class ProfileError(ValueError):
    """A charging profile that cannot be installed; ``str()`` says which field and why."""


@dataclass(frozen=True)
class Period:
    """One ``ChargingSchedulePeriod``: from ``start_s`` (seconds after the schedule start) the limit holds."""

    start_s: float
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class Profile:
    """One installed ``ChargingProfile`` (the wire type, parsed and checked)."""

    profile_id: int
    connector_id: int
    stack_level: int
    purpose: Purpose
    kind: Kind
    unit: Unit
    periods: tuple[Period, ...]
    received_at: datetime
    start_schedule: datetime | None = None
    duration_s: float | None = None
    recurrency: Literal["Daily", "Weekly"] | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | None = None
    min_charging_rate: float | None = None


@dataclass(frozen=True)
class Electrical:
    """A connector's electrical facts: the unit conversion and the rating cap need them."""

    voltage_v: float = 230.0
    phases: int = 3
    max_current_a: float = 32.0

    def watts(self, amps: float, number_phases: int | None = None) -> float:
        """Per-phase current to power, through this charger's voltage and the phases actually in use."""
        return amps * self.voltage_v * self.effective_phases(number_phases)

    def amps(self, watts: float, number_phases: int | None = None) -> float:
        """Power to per-phase current (the inverse of ``watts``)."""
        return watts / (self.voltage_v * self.effective_phases(number_phases))

    def effective_phases(self, number_phases: int | None) -> int:
        return min(number_phases or DEFAULT_PHASES, self.phases)

    @property
    def rating_w(self) -> float:
        return self.watts(self.max_current_a)


@dataclass(frozen=True)
class Capabilities:
    """What a charger supports: the configuration keys a controller probes, plus deliberate quirks."""

    max_stack_level: int = 8  # ChargeProfileMaxStackLevel
    allowed_units: tuple[Unit, ...] = ("A", "W")  # ChargingScheduleAllowedChargingRateUnit
    max_periods: int = 24  # ChargingScheduleMaxPeriods
    max_profiles: int = 16  # MaxChargingProfilesInstalled
    only_stack_level_0: bool = False  # quirk: rejects any stackLevel other than 0
    reject_charge_point_max: bool = False  # quirk: rejects ChargePointMaxProfile
    smart_charging: bool = True  # False: answers NotSupported to every smart-charging message


@dataclass(frozen=True)
class Limit:
    """The limit in force at one instant, in W, and which profile set it (for tracing)."""

    power_w: float
    number_phases: int | None
    source: str  # "rating" or "<purpose>#<profile_id>"


# ---------------------------------------------------------------------------------------------- parsing


def parse_datetime(value: str | None, where: str) -> datetime | None:
    """RFC 3339 to an aware UTC datetime; a naive time is read as UTC (the OCPP 1.6 convention)."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ProfileError(f"{where}: not an RFC 3339 date-time: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_profile(
    data: Mapping[str, Any], connector_id: int, received_at: datetime, *, allow_negative: bool = False
) -> Profile:
    """Parse a ``csChargingProfiles`` payload (snake_case keys, as the ``ocpp`` library hands them over).

    ``allow_negative``: the charger declared bidirectional power (``BidirectionalCharging``): a negative
    limit in a Tx/TxDefault profile is a discharge setpoint (``evsite.discharge`` convention). Any other
    charger rejects a negative limit, as OCPP 1.6 has none.
    """
    sched = data.get("charging_schedule") or {}
    raw_periods = sched.get("charging_schedule_period") or []
    if not raw_periods:
        raise ProfileError("chargingSchedule.chargingSchedulePeriod: at least one period is required")
    periods = tuple(Period(float(p["start_period"]), float(p["limit"]), p.get("number_phases")) for p in raw_periods)
    starts = [p.start_s for p in periods]
    if starts[0] != 0:
        raise ProfileError("chargingSchedulePeriod[0].startPeriod: the first period must start at 0")
    if any(b <= a for a, b in itertools.pairwise(starts)):
        raise ProfileError("chargingSchedulePeriod.startPeriod: periods must be in strictly increasing order")
    if any(p.limit < 0 for p in periods):
        if not allow_negative:
            raise ProfileError("chargingSchedulePeriod.limit: a limit cannot be negative")
        if data["charging_profile_purpose"] == "ChargePointMaxProfile":
            raise ProfileError("chargingSchedulePeriod.limit: a ChargePointMaxProfile cannot be negative")
    kind = data["charging_profile_kind"]
    recurrency = data.get("recurrency_kind")
    start_schedule = parse_datetime(sched.get("start_schedule"), "chargingSchedule.startSchedule")
    if kind == "Recurring":
        if recurrency not in RECURRENCE_S:
            raise ProfileError("recurrencyKind: a Recurring profile needs Daily or Weekly")
        if start_schedule is None:
            raise ProfileError("chargingSchedule.startSchedule: a Recurring profile needs a start")
    return Profile(
        profile_id=int(data["charging_profile_id"]),
        connector_id=connector_id,
        stack_level=int(data["stack_level"]),
        purpose=data["charging_profile_purpose"],
        kind=kind,
        unit=sched["charging_rate_unit"],
        periods=periods,
        received_at=received_at,
        start_schedule=start_schedule,
        duration_s=float(sched["duration"]) if sched.get("duration") is not None else None,
        recurrency=recurrency,
        valid_from=parse_datetime(data.get("valid_from"), "validFrom"),
        valid_to=parse_datetime(data.get("valid_to"), "validTo"),
        transaction_id=data.get("transaction_id"),
        min_charging_rate=sched.get("min_charging_rate"),
    )


# ---------------------------------------------------------------------------------------------- the store


@dataclass
class ProfileStore:
    """The profiles one charge point holds, keyed by connector (0 = the whole charge point).

    ``install`` applies the acceptance and replacement rules; the evaluation functions below read
    ``profiles``. The store is kept across reconnects: a charger goes on applying what it holds while it is
    offline (3.13.6).
    """

    capabilities: Capabilities = field(default_factory=Capabilities)
    profiles: list[Profile] = field(default_factory=list)

    def check(self, profile: Profile, connector_count: int, running_tx: Mapping[int, int]) -> str | None:
        """Why ``profile`` must be rejected, or None when it is acceptable. ``running_tx``: connector -> tx id."""
        caps = self.capabilities
        if profile.connector_id < 0 or profile.connector_id > connector_count:
            return f"connectorId {profile.connector_id} does not exist"
        if profile.stack_level < 0 or profile.stack_level > caps.max_stack_level:
            return f"stackLevel {profile.stack_level} above ChargeProfileMaxStackLevel {caps.max_stack_level}"
        if caps.only_stack_level_0 and profile.stack_level != 0:
            return "this charger accepts only stackLevel 0"
        if profile.unit not in caps.allowed_units:
            return f"chargingRateUnit {profile.unit} not in {','.join(caps.allowed_units)}"
        if len(profile.periods) > caps.max_periods:
            return f"{len(profile.periods)} periods above ChargingScheduleMaxPeriods {caps.max_periods}"
        if profile.purpose == "ChargePointMaxProfile":
            if caps.reject_charge_point_max:
                return "this charger rejects ChargePointMaxProfile"
            if profile.connector_id != 0:
                return "ChargePointMaxProfile is only allowed on connectorId 0"
        if profile.purpose == "TxProfile":
            if profile.connector_id == 0:
                return "TxProfile needs a specific connector"
            tx = running_tx.get(profile.connector_id)
            if tx is None:
                return "TxProfile without a running transaction on that connector"
            if profile.transaction_id is not None and profile.transaction_id != tx:
                return f"transactionId {profile.transaction_id} is not the running transaction {tx}"
        replaced = self._replaced_by(profile)
        if len(self.profiles) - len(replaced) + 1 > caps.max_profiles:
            return f"more than MaxChargingProfilesInstalled {caps.max_profiles}"
        return None

    def _replaced_by(self, new: Profile) -> list[Profile]:
        return [
            p
            for p in self.profiles
            if p.profile_id == new.profile_id
            or (p.purpose == new.purpose and p.stack_level == new.stack_level and p.connector_id == new.connector_id)
        ]

    def install(self, profile: Profile) -> list[Profile]:
        """Add ``profile`` (already checked); returns the profiles it replaced."""
        replaced = self._replaced_by(profile)
        self.profiles = [p for p in self.profiles if p not in replaced] + [profile]
        return replaced

    def clear(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> list[Profile]:
        """ClearChargingProfile: by id, or by the intersection of the other criteria; returns what was removed."""
        if profile_id is not None:
            gone = [p for p in self.profiles if p.profile_id == profile_id]
        else:
            gone = [
                p
                for p in self.profiles
                if (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            ]
        self.profiles = [p for p in self.profiles if p not in gone]
        return gone

    def end_transaction(self, connector_id: int) -> list[Profile]:
        """A transaction ended: its TxProfiles are deleted (3.13.1)."""
        return self.clear(connector_id=connector_id, purpose="TxProfile")


# ---------------------------------------------------------------------------------------------- evaluation


def schedule_start(profile: Profile, t: datetime, tx_start: datetime | None) -> datetime:
    """When the period offsets of ``profile`` count from, for the occurrence in force at ``t``."""
    if profile.kind == "Relative":
        return tx_start if tx_start is not None else t
    if profile.kind == "Recurring":
        assert profile.start_schedule is not None and profile.recurrency is not None
        every = RECURRENCE_S[profile.recurrency]
        elapsed = (t - profile.start_schedule).total_seconds()
        return profile.start_schedule + timedelta(seconds=(elapsed // every) * every)
    return profile.start_schedule or profile.received_at


def profile_limit_w(profile: Profile, t: datetime, tx_start: datetime | None, elec: Electrical) -> Limit | None:
    """The limit ``profile`` sets at ``t`` in W, or None when it does not cover ``t`` (not valid, not begun,
    past its duration)."""
    if profile.valid_from is not None and t < profile.valid_from:
        return None
    if profile.valid_to is not None and t >= profile.valid_to:
        return None
    offset = (t - schedule_start(profile, t, tx_start)).total_seconds()
    if offset < 0:
        return None
    if profile.duration_s is not None and offset >= profile.duration_s:
        return None
    if profile.kind == "Recurring" and offset >= RECURRENCE_S[profile.recurrency or "Daily"]:
        return None
    current = profile.periods[0]
    for period in profile.periods:
        if period.start_s <= offset:
            current = period
        else:
            break
    watts = elec.watts(current.limit, current.number_phases) if profile.unit == "A" else current.limit
    return Limit(watts, current.number_phases, f"{profile.purpose}#{profile.profile_id}")


def _winner(candidates: Iterable[Profile], t: datetime, tx_start: datetime | None, elec: Electrical) -> Limit | None:
    """Highest stack level that covers ``t`` (falling through to lower levels when it does not)."""
    for profile in sorted(candidates, key=lambda p: p.stack_level, reverse=True):
        lim = profile_limit_w(profile, t, tx_start, elec)
        if lim is not None:
            return lim
    return None


def connector_limit(
    profiles: Sequence[Profile],
    connector_id: int,
    t: datetime,
    elec: Electrical,
    tx_start: datetime | None = None,
    include_charge_point_max: bool = True,
) -> Limit:
    """The composite limit of one connector at ``t`` (W). ``tx_start`` is None when no transaction runs."""
    best = Limit(elec.rating_w, None, "rating")
    tx_limit = None
    if tx_start is not None:
        tx_limit = _winner(
            (p for p in profiles if p.purpose == "TxProfile" and p.connector_id == connector_id), t, tx_start, elec
        )
    if tx_limit is None:
        defaults = [p for p in profiles if p.purpose == "TxDefaultProfile"]
        tx_limit = _winner((p for p in defaults if p.connector_id == connector_id), t, tx_start, elec)
        if tx_limit is None:
            tx_limit = _winner((p for p in defaults if p.connector_id == 0), t, tx_start, elec)
    if tx_limit is not None and tx_limit.power_w < best.power_w:
        best = tx_limit
    if include_charge_point_max:
        cp_max = _winner((p for p in profiles if p.purpose == "ChargePointMaxProfile"), t, tx_start, elec)
        if cp_max is not None and cp_max.power_w < best.power_w:
            best = cp_max
    return best


def charge_point_max(profiles: Sequence[Profile], t: datetime, elec: Electrical) -> Limit | None:
    """The ChargePointMaxProfile limit in force at ``t`` (the whole charge point), or None."""
    return _winner((p for p in profiles if p.purpose == "ChargePointMaxProfile"), t, None, elec)


def charge_point_limit(
    profiles: Sequence[Profile],
    t: datetime,
    elec: Electrical,
    tx_starts: Mapping[int, datetime | None],
) -> Limit:
    """Connector 0: ``min(ChargePointMaxProfile, sum of connector limits)`` over the given connectors."""
    total = sum(
        connector_limit(profiles, c, t, elec, s, include_charge_point_max=False).power_w for c, s in tx_starts.items()
    )
    best = Limit(total, None, "connectors")
    cp_max = _winner((p for p in profiles if p.purpose == "ChargePointMaxProfile"), t, None, elec)
    if cp_max is not None and cp_max.power_w < best.power_w:
        best = cp_max
    return best


def breakpoints(
    profiles: Sequence[Profile], t0: datetime, t1: datetime, tx_starts: Iterable[datetime | None]
) -> list[datetime]:
    """Every instant in ``[t0, t1)`` at which some profile's limit may change (plus ``t0``)."""
    out = {t0}
    starts = list(tx_starts) or [None]

    def add(t: datetime) -> None:
        if t0 < t < t1:
            out.add(t)

    for p in profiles:
        for bound in (p.valid_from, p.valid_to):
            if bound is not None:
                add(bound)
        origins: list[datetime] = []
        if p.kind == "Recurring":
            assert p.start_schedule is not None and p.recurrency is not None
            every = timedelta(seconds=RECURRENCE_S[p.recurrency])
            o = schedule_start(p, t0, None)
            while o < t1:
                origins.append(o)
                o += every
        elif p.kind == "Relative":
            origins.extend(s if s is not None else t0 for s in starts)
        else:
            origins.append(p.start_schedule or p.received_at)
        for o in origins:
            for period in p.periods:
                add(o + timedelta(seconds=period.start_s))
            if p.duration_s is not None:
                add(o + timedelta(seconds=p.duration_s))
    return sorted(out)


@dataclass(frozen=True)
class CompositePeriod:
    start_s: int
    limit: float
    number_phases: int | None


def composite(
    profiles: Sequence[Profile],
    connector_id: int,
    t0: datetime,
    duration_s: int,
    elec: Electrical,
    unit: Unit = "A",
    tx_starts: Mapping[int, datetime | None] | None = None,
) -> list[CompositePeriod]:
    """The composite schedule from ``t0`` for ``duration_s`` (GetCompositeSchedule), in ``unit``.

    ``tx_starts`` maps connector -> transaction start (None when idle); connector 0 sums the connectors.
    Limits are rounded to 0.1 (the OCPP schema's precision) and equal neighbours are merged.
    """
    tx_starts = dict(tx_starts or {})
    t1 = t0 + timedelta(seconds=duration_s)
    points = breakpoints(profiles, t0, t1, tx_starts.values())
    out: list[CompositePeriod] = []
    for t in points:
        if connector_id == 0:
            lim = charge_point_limit(profiles, t, elec, tx_starts)
        else:
            lim = connector_limit(profiles, connector_id, t, elec, tx_starts.get(connector_id))
        value = lim.power_w if unit == "W" else elec.amps(lim.power_w, lim.number_phases)
        value = round(value, 1)
        phases = elec.effective_phases(lim.number_phases) if unit == "A" else None
        if out and out[-1].limit == value and out[-1].number_phases == phases:
            continue
        out.append(CompositePeriod(round((t - t0).total_seconds()), value, phases))
    return out
