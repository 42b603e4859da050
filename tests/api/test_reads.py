"""Read endpoints with a real charger's data: chargers, transactions (filters, CSV), meter values, profiles with
their reasons, the event log, site state and history, healthz, metrics, TLS; bad queries are 422."""

from __future__ import annotations

import csv
import io
import json
import ssl
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call

from evsite import topics
from evsite.meter_reading import MeterReading
from tests.api.conftest import TOKENS, Site
from tests.controller.ocpp_client import charge_point
from tests.controller.test_csms_auth import self_signed
from tests.waiting import eventually

PROFILE = {
    "chargingProfileId": 1,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]},
}


async def _charge(site: Site) -> tuple[int, int]:
    """CP1 boots, starts two transactions, reports power and energy, stops the first; returns both ids."""
    async with charge_point(site.csms.url, "CP1") as cp:
        await cp.call(call.BootNotification(charge_point_model="M1", charge_point_vendor="Acme"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        t1 = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000,
                                                 timestamp="2026-03-02T07:00:00Z"))  # fmt: skip
        t2 = await cp.call(call.StartTransaction(connector_id=2, id_tag="TAG-OK", meter_start=0,
                                                 timestamp="2026-03-02T07:30:00Z"))  # fmt: skip
        sampled = [{"measurand": "Power.Active.Import", "value": "7400", "unit": "W"},
                   {"measurand": "Energy.Active.Import.Register", "value": "3500", "unit": "Wh"}]  # fmt: skip
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=t1.transaction_id,
                meter_value=[{"timestamp": "2026-03-02T07:59:00Z", "sampledValue": sampled}],
            )
        )
        await site.csms.send("CP1", call.SetChargingProfile(connector_id=1, cs_charging_profiles=PROFILE),
                             reason="headroom share")  # fmt: skip
        await cp.call(call.StopTransaction(meter_stop=3500, timestamp="2026-03-02T08:00:00Z",
                                           transaction_id=t1.transaction_id, reason="EVDisconnected"))  # fmt: skip
        await site.csms.flush()
        return t1.transaction_id, t2.transaction_id


async def test_chargers_transactions_meter_values_profiles_and_events(site: Site) -> None:
    t1, t2 = await _charge(site)
    async with site.client("read") as c:
        chargers = {ch["id"]: ch for ch in (await c.get("/api/chargers")).json()}
        cp1 = chargers["CP1"]
        assert (cp1["vendor"], cp1["owner"], cp1["online"], cp1["open_transactions"]) == ("Acme", "config", False, [t2])
        conn1 = next(k for k in cp1["connectors"] if k["connector_id"] == 1)
        assert (conn1["status"], conn1["limit_a"], conn1["limit_reason"]) == ("Charging", 16.0, "headroom share")
        assert chargers["CP2"]["connectors"][0]["limit_reason"] == "no profile sent"

        txs = (await c.get("/api/transactions")).json()
        assert [t["id"] for t in txs] == [t2, t1]  # newest first
        assert txs[1]["energy_kwh"] == 2.5 and txs[1]["stop_reason"] == "EVDisconnected" and not txs[1]["open"]
        assert [t["id"] for t in (await c.get("/api/transactions?open=true")).json()] == [t2]
        assert [t["id"] for t in (await c.get("/api/transactions?open=false")).json()] == [t1]
        since = (await c.get("/api/transactions", params={"since": "2026-03-02T07:15:00Z"})).json()
        assert [t["id"] for t in since] == [t2]
        until = (await c.get("/api/transactions", params={"until": "2026-03-02T07:15:00+00:00"})).json()
        assert [t["id"] for t in until] == [t1]
        assert (await c.get("/api/transactions?cp_id=CP2")).json() == []
        assert len((await c.get("/api/transactions?id_tag=TAG-OK&limit=1")).json()) == 1

        r = await c.get("/api/transactions?format=csv&open=false")
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 1 and rows[0]["id"] == str(t1) and float(rows[0]["energy_kwh"]) == 2.5
        assert rows[0]["start_time"] == "2026-03-02T07:00:00Z"

        query = {"transaction_id": t1, "measurand": "Power.Active.Import"}
        mv = (await c.get("/api/meter-values", params=query)).json()
        assert [(m["value"], m["unit"]) for m in mv] == [(7400.0, "W")]

        [profile] = (await c.get("/api/profiles?cp_id=CP1")).json()
        assert (profile["status"], profile["reason"], profile["profile"]) == ("Accepted", "headroom share", PROFILE)

        events = (await c.get("/api/events?cp_id=CP1")).json()
        assert events[0]["id"] > events[-1]["id"]  # newest first
        assert {"connected", "boot", "disconnected"} <= {e["kind"] for e in events}
        assert [e["kind"] for e in (await c.get("/api/events?kind=boot")).json()] == ["boot"]
        assert len((await c.get("/api/events?limit=2")).json()) == 2
        assert (await c.get("/api/chargers/NOPE")).status_code == 404
        r = await c.get("/api/plan")
        assert r.status_code == 404 and "no plan" in r.json()["message"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/transactions?limit=0", "query.limit: Input should be greater than or equal to 1"),
        ("/api/transactions?limit=10001", "query.limit: Input should be less than or equal to 10000"),
        ("/api/transactions?format=xml", "query.format: Input should be 'json' or 'csv'"),
        ("/api/transactions?open=maybe", "query.open: Input should be a valid boolean"),
        ("/api/transactions?since=yesterday", "query.since: Input should be a valid datetime"),
        ("/api/transactions?since=2026-03-02T07:00:00", "since: expected a time zone"),
        ("/api/meter-values?transaction_id=x", "query.transaction_id: Input should be a valid integer"),
        ("/api/meter-values?since=2026-03-02T07:00:00", "since: expected a time zone"),
        ("/api/events?limit=-1", "query.limit: Input should be greater than or equal to 1"),
        ("/api/history?hours=0", "query.hours: Input should be greater than 0"),
    ],
)
async def test_bad_queries_are_422_naming_the_parameter(site: Site, path: str, message: str) -> None:
    async with site.client("read") as c:
        r = await c.get(path)
    assert r.status_code == 422
    assert r.json()["message"].startswith(message)


async def test_site_state_and_history_follow_the_meter_and_the_chargers(site: Site) -> None:
    bus, clock = site.runtime.bus, site.clock
    async with site.client("read") as c:
        state = (await c.get("/api/site")).json()
        assert state["building_kw"] is None and state["meter_stale"] and state["headroom_kw"] is None
        assert (await c.get("/api/history")).json()["at"] == []
        bus.publish(topics.METER_SITE, MeterReading(clock.now(), 60.0))
        await eventually(lambda: len(site.runtime.api.ctx.live.history()) == 1)
        await _charge(site)  # 7.4 kW on CP1/1 until its transaction stops
        await clock.advance(10)
        bus.publish(topics.METER_SITE, MeterReading(clock.now(), 80.0))
        await eventually(lambda: site.runtime.api.ctx.live.history()[-1].building_kw == 80.0)
        state = (await c.get("/api/site")).json()
        limit = 400 * 208 * 3**0.5 / 1000 * 0.8
        assert state["building_kw"] == 80.0 and not state["meter_stale"]
        assert state["ev_kw"] == 0.0  # the only charging connector's transaction stopped
        assert state["headroom_kw"] == pytest.approx(limit - 80.0)
        hist = (await c.get("/api/history")).json()
        assert hist["building_kw"][0] == 60.0 and hist["building_kw"][-1] == 80.0
        assert 7.4 in hist["ev_kw"]  # the EV load while CP1 charged
        await clock.advance(31)
        assert (await c.get("/api/site")).json()["meter_stale"]
        assert (await c.get("/api/history", params={"hours": 0.001})).json()["at"] == []


async def test_metrics_in_prometheus_format(site: Site) -> None:
    await _charge(site)
    site.runtime.bus.publish(topics.METER_SITE, MeterReading(site.clock.now(), 50.0))
    async with charge_point(site.csms.url, "CP1"), site.client("read") as c:
        await eventually(lambda: "CP1" in site.csms.connected)
        async with site.client() as op:
            await op.post("/api/chargers/CP1/reset", json={"type": "Soft"})
        await eventually(lambda: site.runtime.api.ctx.live.site_state().building_kw == 50.0)
        r = await c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "evsite_chargers_online 1.0" in text
    assert "evsite_chargers_known 2.0" in text
    assert 'evsite_ocpp_events_total{action="StartTransaction"} 2.0' in text
    assert 'evsite_ocpp_events_total{action="StopTransaction"} 1.0' in text
    assert 'evsite_ocpp_events_total{action="SetChargingProfile"} 1.0' in text
    assert 'evsite_api_call_latency_seconds_count{action="Reset"} 1.0' in text
    assert "evsite_store_write_lag_seconds " in text
    assert "evsite_site_building_kw 50.0" in text
    assert f"evsite_site_limit_kw {400 * 208 * 3**0.5 / 1000 * 0.8}" in text


async def test_healthz_says_down_when_the_broker_is_unreachable(make_site) -> None:
    site = await make_site(mqtt={"enabled": True, "host": "127.0.0.1", "port": 1})
    async with site.client(None) as c:
        r = await c.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "down", "process": "up", "store": "up", "broker": "down"}


async def test_healthz_with_the_real_broker(make_site, mqtt_broker) -> None:
    host, port = mqtt_broker
    site = await make_site(mqtt={"enabled": True, "host": host, "port": port, "meter_topic": "evsite/test/api/m"})
    async with site.client(None) as c:
        r = await c.get("/healthz")
    assert r.status_code == 200 and r.json()["broker"] == "up"


async def test_the_api_is_served_over_tls_with_the_server_certificate(make_site, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    site = await make_site(server={"tls_cert": str(cert), "tls_key": str(key)})
    assert site.url.startswith("https://")
    ctx = ssl.create_default_context(cafile=str(cert))
    auth = {"Authorization": f"Bearer {TOKENS['read']}"}
    async with httpx.AsyncClient(base_url=site.url, verify=ctx, headers=auth) as c:
        assert (await c.get("/api/site")).status_code == 200
    plain = site.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient(base_url=plain, timeout=3) as c:
            await c.get("/healthz")


async def test_history_window_drops_old_points() -> None:
    from datetime import UTC, datetime

    from controller.api.site_state import LiveSite
    from evsite.bus import EventBus
    from evsite.clock import ManualClock
    from evsite.config import parse_config

    clock = ManualClock(datetime(2026, 3, 2, tzinfo=UTC))
    bus = EventBus()
    cfg = parse_config({"api": {"history_hours": 1}})
    live = LiveSite(bus, clock, lambda: cfg)
    for minute in range(0, 120, 10):
        if minute:
            await clock.advance(600)
        reading = MeterReading(clock.now(), float(minute))
        bus.publish(topics.METER_SITE, reading)
        live.handle(topics.METER_SITE, reading)
    assert [p.building_kw for p in live.history()] == [50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0]


async def test_with_load_management_the_api_shows_its_view_and_plan(make_site, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"buildings": [{"name": "b", "schedule_kw": [20.0] * 12 + [30.0] * 12}]}))
    site = await make_site(site={"enabled": True, "plan": str(plan)})
    lm = site.runtime.loadmgmt
    assert lm is not None and site.runtime.api.ctx.source is lm
    await eventually(lambda: lm.plan.schedule is not None)
    async with site.client("read") as c:
        state = (await c.get("/api/site")).json()
        expected = dataclass_json(lm.site_state())
        assert {k: v for k, v in state.items() if k != "at"} == {k: v for k, v in expected.items() if k != "at"}
        assert state["connectors"] and all(k["reason"] for k in state["connectors"])
        assert state["plan_period"] == "weekday 08:00"  # the manual clock: Monday 08:00 UTC
        doc = (await c.get("/api/plan")).json()
        assert doc["period_now"] == "weekday 08:00" and doc["ev_ceiling_kw_now"] == 20.0
        assert doc["weekday_kw"][12] == 30.0 and doc["tz"] == "UTC"
        # the dashboard's history now records load management's limit
        site.runtime.bus.publish(topics.METER_SITE, MeterReading(site.clock.now(), 40.0))
        await eventually(lambda: site.runtime.api.ctx.live.history())
        assert (await c.get("/api/history")).json()["limit_kw"][-1] == lm.site_state().limit_kw


def dataclass_json(state) -> dict:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(state)
