"""OCPP 1.6 section 3.13 stacking rules, unit conversion and Recurring profiles, as tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulators.smart_charging import (
    Capabilities,
    Electrical,
    ProfileError,
    ProfileStore,
    composite,
    connector_limit,
    parse_profile,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ELEC = Electrical(voltage_v=230.0, phases=3, max_current_a=32.0)


def wire(
    pid: int,
    purpose: str,
    limits: list[tuple[int, float]] | list[tuple[int, float, int]],
    *,
    stack: int = 0,
    kind: str = "Absolute",
    unit: str = "A",
    start: datetime | None = T0,
    duration: int | None = None,
    recurrency: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    tx: int | None = None,
) -> dict[str, Any]:
    """A csChargingProfiles payload in the snake_case shape the ocpp library hands to handlers."""
    periods = [{"start_period": p[0], "limit": p[1], **({"number_phases": p[2]} if len(p) > 2 else {})} for p in limits]
    sched: dict[str, Any] = {"charging_rate_unit": unit, "charging_schedule_period": periods}
    if start is not None:
        sched["start_schedule"] = start.isoformat()
    if duration is not None:
        sched["duration"] = duration
    d: dict[str, Any] = {
        "charging_profile_id": pid,
        "stack_level": stack,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kind,
        "charging_schedule": sched,
    }
    if recurrency:
        d["recurrency_kind"] = recurrency
    if valid_from:
        d["valid_from"] = valid_from.isoformat()
    if valid_to:
        d["valid_to"] = valid_to.isoformat()
    if tx is not None:
        d["transaction_id"] = tx
    return d


def amps_at(profiles: list[tuple[dict[str, Any], int]], at: datetime, tx_start: datetime | None = T0) -> float:
    """Install (connector, payload) pairs and read connector 1's limit in A at ``at``."""
    store = ProfileStore()
    for data, conn in profiles:
        store.install(parse_profile(data, conn, T0))
    lim = connector_limit(store.profiles, 1, at, ELEC, tx_start)
    return round(ELEC.amps(lim.power_w, lim.number_phases), 3)


H = timedelta(hours=1)

STACKING_CASES = [
    # (name, [(payload, connector)], time, tx running?, expected A)
    ("no profile: connector rating", [], T0, True, 32.0),
    ("tx default on connector 0 applies to connector 1", [(wire(1, "TxDefaultProfile", [(0, 16)]), 0)], T0, True, 16),
    (
        "connector-specific default beats connector-0 default",
        [(wire(1, "TxDefaultProfile", [(0, 16)]), 0), (wire(2, "TxDefaultProfile", [(0, 20)]), 1)],
        T0,
        True,
        20,
    ),
    (
        "TxProfile beats TxDefaultProfile even when higher",
        [(wire(1, "TxDefaultProfile", [(0, 10)], stack=5), 0), (wire(2, "TxProfile", [(0, 24)]), 1)],
        T0,
        True,
        24,
    ),
    (
        "TxProfile ignored when no transaction runs",
        [(wire(1, "TxDefaultProfile", [(0, 10)]), 0), (wire(2, "TxProfile", [(0, 24)]), 1)],
        T0,
        False,
        10,
    ),
    (
        "highest stack level wins",
        [(wire(1, "TxDefaultProfile", [(0, 10)], stack=1), 0), (wire(2, "TxDefaultProfile", [(0, 6)], stack=3), 0)],
        T0,
        True,
        6,
    ),
    (
        "higher stack past its duration falls through to lower",
        [
            (wire(1, "TxDefaultProfile", [(0, 10)], stack=1), 0),
            (wire(2, "TxDefaultProfile", [(0, 6)], stack=3, duration=3600), 0),
        ],
        T0 + 2 * H,
        True,
        10,
    ),
    (
        "higher stack not yet valid falls through",
        [
            (wire(1, "TxDefaultProfile", [(0, 10)], stack=1), 0),
            (wire(2, "TxDefaultProfile", [(0, 6)], stack=3, valid_from=T0 + H), 0),
        ],
        T0,
        True,
        10,
    ),
    (
        "higher stack expired (validTo) falls through",
        [
            (wire(1, "TxDefaultProfile", [(0, 10)], stack=1), 0),
            (wire(2, "TxDefaultProfile", [(0, 6)], stack=3, valid_to=T0 + H), 0),
        ],
        T0 + H,
        True,
        10,
    ),
    (
        "ChargePointMaxProfile caps the tx profile",
        [(wire(1, "ChargePointMaxProfile", [(0, 12)]), 0), (wire(2, "TxProfile", [(0, 24)]), 1)],
        T0,
        True,
        12,
    ),
    (
        "tx profile below ChargePointMax wins",
        [(wire(1, "ChargePointMaxProfile", [(0, 30)]), 0), (wire(2, "TxProfile", [(0, 8)]), 1)],
        T0,
        True,
        8,
    ),
    (
        "profile above the rating is capped by the rating",
        [(wire(1, "TxProfile", [(0, 63)]), 1)],
        T0,
        True,
        32,
    ),
    ("absolute periods step", [(wire(1, "TxProfile", [(0, 16), (1800, 8)]), 1)], T0 + timedelta(minutes=45), True, 8),
    ("absolute not started yet", [(wire(1, "TxProfile", [(0, 16)], start=T0 + H), 1)], T0, True, 32),
    (
        "relative counts from the transaction start",
        [(wire(1, "TxProfile", [(0, 16), (3600, 6)], kind="Relative", start=None), 1)],
        T0 + timedelta(minutes=70),
        True,
        6,
    ),
    (
        "W limit converted with 230 V x 3 phases",
        [(wire(1, "TxProfile", [(0, 11040.0)], unit="W"), 1)],
        T0,
        True,
        16,
    ),
]


@pytest.mark.parametrize(
    ("name", "profiles", "at", "tx", "expected"), STACKING_CASES, ids=[c[0] for c in STACKING_CASES]
)
def test_stacking_rules(name: str, profiles: list, at: datetime, tx: bool, expected: float) -> None:
    assert amps_at(profiles, at, T0 if tx else None) == pytest.approx(expected)


def test_relative_profile_depends_on_transaction_start() -> None:
    data = wire(1, "TxProfile", [(0, 16), (3600, 6)], kind="Relative", start=None)
    at = T0 + timedelta(minutes=70)
    assert amps_at([(data, 1)], at, tx_start=T0) == 6
    assert amps_at([(data, 1)], at, tx_start=T0 + timedelta(minutes=30)) == 16


@pytest.mark.parametrize(
    ("voltage", "phases", "period_phases", "amps", "watts"),
    [
        (230.0, 3, None, 16.0, 11040.0),
        (230.0, 3, 1, 16.0, 3680.0),
        (230.0, 1, None, 32.0, 7360.0),  # a single-phase charger cannot use 3 phases
        (120.0, 1, None, 16.0, 1920.0),  # 120 V North American L1
        (277.0, 3, 3, 10.0, 8310.0),  # 480 V wye: 277 V phase-to-neutral
    ],
)
def test_unit_conversion_uses_real_voltage_and_phases(voltage, phases, period_phases, amps, watts) -> None:
    elec = Electrical(voltage_v=voltage, phases=phases, max_current_a=80.0)
    assert elec.watts(amps, period_phases) == pytest.approx(watts)
    assert elec.amps(watts, period_phases) == pytest.approx(amps)


def test_composite_in_watts_and_amps_agree() -> None:
    store = ProfileStore()
    store.install(parse_profile(wire(1, "TxProfile", [(0, 16), (600, 10)], duration=1200), 1, T0))
    amps = composite(store.profiles, 1, T0, 1800, ELEC, "A", {1: T0})
    watts = composite(store.profiles, 1, T0, 1800, ELEC, "W", {1: T0})
    assert [(p.start_s, p.limit) for p in amps] == [(0, 16.0), (600, 10.0), (1200, 32.0)]
    assert [(p.start_s, p.limit) for p in watts] == [(0, 11040.0), (600, 6900.0), (1200, 22080.0)]


def test_recurring_daily_crosses_midnight() -> None:
    """22:00-06:00 at 10 A every night, unlimited (rating) during the day: 01:00 is still 'the night'."""
    start = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    data = wire(1, "TxDefaultProfile", [(0, 10), (8 * 3600, 32)], kind="Recurring", recurrency="Daily", start=start)
    at = datetime(2026, 3, 5, 1, 0, tzinfo=UTC)
    assert amps_at([(data, 0)], at) == 10
    assert amps_at([(data, 0)], datetime(2026, 3, 5, 12, 0, tzinfo=UTC)) == 32
    assert amps_at([(data, 0)], datetime(2026, 3, 5, 21, 59, tzinfo=UTC)) == 32
    assert amps_at([(data, 0)], datetime(2026, 3, 5, 22, 0, tzinfo=UTC)) == 10

    store = ProfileStore()
    store.install(parse_profile(data, 0, T0))
    t0 = datetime(2026, 3, 4, 20, 0, tzinfo=UTC)
    comp = composite(store.profiles, 1, t0, 12 * 3600, ELEC, "A", {1: t0})
    assert [(p.start_s, p.limit) for p in comp] == [(0, 32.0), (2 * 3600, 10.0), (10 * 3600, 32.0)]


def test_recurring_with_duration_and_weekly() -> None:
    monday = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    data = wire(1, "TxDefaultProfile", [(0, 6)], kind="Recurring", recurrency="Weekly", start=monday, duration=7200)
    assert amps_at([(data, 0)], monday + timedelta(days=7, hours=1)) == 6
    assert amps_at([(data, 0)], monday + timedelta(days=7, hours=3)) == 32
    assert amps_at([(data, 0)], monday + timedelta(days=3, hours=1)) == 32


def test_connector_zero_composite_sums_connectors_under_charge_point_max() -> None:
    store = ProfileStore()
    store.install(parse_profile(wire(1, "TxDefaultProfile", [(0, 16)]), 0, T0))
    store.install(parse_profile(wire(2, "ChargePointMaxProfile", [(0, 40), (3600, 20)]), 0, T0))
    comp = composite(store.profiles, 0, T0, 7200, ELEC, "A", {1: T0, 2: T0})
    assert [(p.start_s, p.limit) for p in comp] == [(0, 32.0), (3600, 20.0)]


REJECT_CASES = [
    (
        "stack above max",
        Capabilities(max_stack_level=2),
        wire(1, "TxDefaultProfile", [(0, 6)], stack=3),
        0,
        "stackLevel",
    ),
    ("only stack 0", Capabilities(only_stack_level_0=True), wire(1, "TxDefaultProfile", [(0, 6)], stack=1), 0, "only"),
    (
        "unit not allowed",
        Capabilities(allowed_units=("A",)),
        wire(1, "TxDefaultProfile", [(0, 6000)], unit="W"),
        0,
        "W",
    ),
    (
        "too many periods",
        Capabilities(max_periods=2),
        wire(1, "TxDefaultProfile", [(0, 6), (60, 8), (120, 10)]),
        0,
        "periods",
    ),
    (
        "cp max rejected (quirk)",
        Capabilities(reject_charge_point_max=True),
        wire(1, "ChargePointMaxProfile", [(0, 6)]),
        0,
        "rejects",
    ),
    ("cp max on connector", Capabilities(), wire(1, "ChargePointMaxProfile", [(0, 6)]), 1, "connectorId 0"),
    ("tx profile without transaction", Capabilities(), wire(1, "TxProfile", [(0, 6)]), 2, "without"),
    ("tx profile wrong transaction", Capabilities(), wire(1, "TxProfile", [(0, 6)], tx=99), 1, "transactionId"),
    ("no such connector", Capabilities(), wire(1, "TxDefaultProfile", [(0, 6)]), 5, "does not exist"),
]


@pytest.mark.parametrize(("name", "caps", "data", "conn", "reason"), REJECT_CASES, ids=[c[0] for c in REJECT_CASES])
def test_profiles_rejected_per_capabilities(name, caps, data, conn, reason) -> None:
    store = ProfileStore(caps)
    why = store.check(parse_profile(data, conn, T0), connector_count=2, running_tx={1: 7})
    assert why is not None and reason in why


def test_replacement_by_id_and_by_purpose_stack_connector() -> None:
    store = ProfileStore()
    store.install(parse_profile(wire(1, "TxDefaultProfile", [(0, 6)], stack=1), 0, T0))
    store.install(parse_profile(wire(2, "TxDefaultProfile", [(0, 8)], stack=2), 0, T0))
    store.install(parse_profile(wire(1, "TxDefaultProfile", [(0, 10)], stack=4), 0, T0))  # same id
    store.install(parse_profile(wire(3, "TxDefaultProfile", [(0, 12)], stack=2), 0, T0))  # same purpose/stack
    assert sorted((p.profile_id, p.stack_level) for p in store.profiles) == [(1, 4), (3, 2)]


def test_transaction_end_removes_tx_profiles_only() -> None:
    store = ProfileStore()
    store.install(parse_profile(wire(1, "TxDefaultProfile", [(0, 6)]), 0, T0))
    store.install(parse_profile(wire(2, "TxProfile", [(0, 8)]), 1, T0))
    store.end_transaction(1)
    assert [p.profile_id for p in store.profiles] == [1]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (wire(1, "TxProfile", [(10, 6)]), "startPeriod"),
        (wire(1, "TxProfile", [(0, 6), (0, 8)]), "increasing"),
        (wire(1, "TxProfile", [(0, -1)]), "negative"),
        (wire(1, "TxDefaultProfile", [(0, 6)], kind="Recurring"), "recurrencyKind"),
        (wire(1, "TxDefaultProfile", [(0, 6)], kind="Recurring", recurrency="Daily", start=None), "startSchedule"),
    ],
)
def test_malformed_profiles_say_which_field(data, fragment) -> None:
    with pytest.raises(ProfileError, match=fragment):
        parse_profile(data, 1, T0)
