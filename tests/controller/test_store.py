"""The store on both backends: SQLite file (embedded default) and the local PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from ocpp.v16 import call

from controller.csms import CentralSystem
from controller.store import REBOOT_CLOSED, Store, WriteBatch
from tests.controller.ocpp_client import charge_point

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store.open(url)
    yield s
    s.close()


def test_charge_points_and_id_tags(store: Store) -> None:
    store.register_charge_point("CP1", T0, password_hash="h1")
    store.register_charge_point("CP1", T0 + timedelta(hours=1))  # no hash given: keeps the stored one
    store.register_charge_point("AUTO", T0, auto_registered=True)
    assert [(r.id, r.password_hash, r.auto_registered) for r in store.charge_points()] == [
        ("AUTO", None, True),
        ("CP1", "h1", False),
    ]
    assert store.charge_point("CP1").registered_at == T0
    store.upsert_id_tag("T1", "Accepted", T0, None)
    store.upsert_id_tag("T1", "Blocked", None, "P")
    tag = store.id_tag("T1")
    assert (tag.status, tag.expiry_date, tag.parent_id_tag) == ("Blocked", None, "P")


def test_transactions_idempotent_start_unknown_stop_and_reboot_close(store: Store) -> None:
    store.register_charge_point("CP1", T0)
    a, created = store.start_transaction("CP1", 1, "T", 100, T0, "Accepted")
    again, created_again = store.start_transaction("CP1", 1, "T", 100, T0, "Accepted")
    b, _ = store.start_transaction("CP1", 2, "T", 0, T0, "Accepted")
    assert (created, created_again, again) == (True, False, a) and b != a
    store.write_batch(
        WriteBatch(
            meter_values=[
                {"cp_id": "CP1", "connector_id": 1, "transaction_id": a, "timestamp": T0 + timedelta(minutes=m),
                 "measurand": "Energy.Active.Import.Register", "value": float(v), "raw_value": str(v)}
                for m, v in ((1, 150), (2, 260))
            ]
        )
    )  # fmt: skip
    closed = store.record_boot("CP1", T0 + timedelta(hours=1), vendor="V", model="M")
    assert sorted(closed) == sorted([a, b])
    tx = store.transaction(a)
    assert (tx.stop_reason, tx.meter_stop, tx.stop_time) == (REBOOT_CLOSED, 260, T0 + timedelta(hours=1))
    assert store.transaction(b).meter_stop == 0  # no meter values: its meter start
    assert store.transactions(open_only=True) == []
    rid, known = store.stop_transaction("CP1", 999, 5, T0, "Local", None)
    assert not known and store.transaction(rid).reported_id == 999
    assert store.stop_transaction("CP1", 999, 5, T0, "Local", None) == (rid, False)
    assert store.stop_transaction("OTHER", a, 1, T0, None, None)[1] is False  # another charger's id is unknown


def test_write_batch_upserts_connectors_and_appends_rows(store: Store) -> None:
    store.register_charge_point("CP1", T0)
    for status in ("Available", "Charging"):
        store.write_batch(
            WriteBatch(
                connectors={("CP1", 1): {"cp_id": "CP1", "connector_id": 1, "status": status, "error_code": "NoError",
                                         "info": None, "vendor_error_code": None, "updated_at": T0}},
                events=[{"at": T0, "cp_id": "CP1", "kind": "k", "data": {"status": status}}],
                last_seen={"CP1": T0 + timedelta(seconds=5)},
                cp_fields={"CP1": {"firmware_status": "Installed"}},
            )
        )  # fmt: skip
    (conn,) = store.connectors()
    assert conn.status == "Charging"
    assert [e.data["status"] for e in store.events(kind="k")] == ["Available", "Charging"]
    cp = store.charge_point("CP1")
    assert (cp.last_seen, cp.firmware_status) == (T0 + timedelta(seconds=5), "Installed")
    store.add_profile("CP1", "SetChargingProfile", 1, {"x": 1}, "Rejected", "why", T0)
    (p,) = store.charging_profiles("CP1")
    assert (p.status, p.reason, p.profile, p.sent_at) == ("Rejected", "why", {"x": 1}, T0)


def test_write_batch_stores_mixed_updates_json_times_and_profiles_as_written(store: Store) -> None:
    """The batch's bulk paths (the SQLite driver's executemany) read back exactly what was buffered."""
    for cp in ("CP1", "CP2"):
        store.register_charge_point(cp, T0)
    later = datetime(2026, 3, 2, 10, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=2)))  # 08:00:00.25 UTC
    caps = {"ChargeProfileMaxStackLevel": 3, "units": ["A", "W"]}
    store.write_batch(
        WriteBatch(
            cp_fields={"CP1": {"capabilities": caps, "online": True, "last_boot": later, "vendor": "V"},
                       "CP2": {"online": False}},
            last_seen={"CP1": later, "CP2": T0},
            events=[{"at": later, "cp_id": "CP1", "kind": "boot", "data": None},
                    {"at": T0, "cp_id": None, "kind": "boot", "data": {"n": 1.5}}],
            profiles=[{"cp_id": "CP2", "action": "ClearChargingProfile", "connector_id": None, "profile": None,
                       "status": "Accepted", "reason": None, "sent_at": later}],
        )
    )  # fmt: skip
    cp1, cp2 = store.charge_point("CP1"), store.charge_point("CP2")
    assert (cp1.capabilities, cp1.online, cp1.last_boot, cp1.last_seen, cp1.vendor) == (caps, True, later, later, "V")
    assert (cp2.online, cp2.last_seen, cp2.capabilities, cp2.vendor) == (False, T0, None, None)
    assert [(e.cp_id, e.at, e.data) for e in store.events(kind="boot")] == [
        ("CP1", later, None),
        (None, T0, {"n": 1.5}),
    ]
    (p,) = store.charging_profiles("CP2")
    assert (p.action, p.connector_id, p.profile, p.status, p.reason, p.sent_at) == (
        "ClearChargingProfile",
        None,
        None,
        "Accepted",
        None,
        later,
    )


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive"):
        store.register_charge_point("CP1", datetime(2026, 1, 1))


async def test_central_system_on_postgresql(make_csms, pg_url: str) -> None:
    csms: CentralSystem = await make_csms(url=pg_url)
    assert csms.store.engine.dialect.name == "postgresql"
    async with charge_point(csms.url, "CP1") as cp:
        await cp.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        start = await cp.call(
            call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0, timestamp="2026-03-02T08:00:00Z")
        )
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        await cp.call(
            call.MeterValues(connector_id=1, transaction_id=start.transaction_id,
                             meter_value=[{"timestamp": "2026-03-02T08:01:00Z", "sampledValue": [{"value": "99"}]}])
        )  # fmt: skip
        await cp.call(call.StopTransaction(meter_stop=120, timestamp="2026-03-02T08:05:00Z",
                                           transaction_id=start.transaction_id))  # fmt: skip
        await cp.wait_for("ChangeConfiguration", 2)
    await csms.flush()
    tx = csms.store.transaction(start.transaction_id)
    assert (tx.meter_start, tx.meter_stop, tx.stop_reason) == (0, 120, "Local")
    assert [m.value for m in csms.store.meter_values(transaction_id=tx.id)] == [99.0]
    assert csms.store.connectors("CP1")[0].status == "Charging"
    assert csms.store.charge_point("CP1").capabilities["NumberOfConnectors"] == 2
