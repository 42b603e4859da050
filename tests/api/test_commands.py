"""Write endpoints against a real test charger over WebSocket: the right OCPP call goes out, the answer comes
back, the event log says who asked; offline is 409, a CALLERROR is 502 with its code, config ids are 409."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ocpp.v16 import call

from evsite import topics
from evsite.departure_update import DepartureUpdate
from evsite.site_state import SiteLimitOverride
from tests.api.conftest import Site
from tests.controller.ocpp_client import charge_point
from tests.waiting import eventually

COMMANDS = [
    ("remote-start", {"id_tag": "TAG-OK", "connector_id": 1}, "RemoteStartTransaction",
     {"id_tag": "TAG-OK", "connector_id": 1}, "Accepted"),
    ("remote-stop", {"transaction_id": 7}, "RemoteStopTransaction", {"transaction_id": 7}, "Accepted"),
    ("reset", {"type": "Hard"}, "Reset", {"type": "Hard"}, "Accepted"),
    ("unlock", {"connector_id": 2}, "UnlockConnector", {"connector_id": 2}, "Unlocked"),
    ("availability", {"connector_id": 1, "type": "Inoperative"}, "ChangeAvailability",
     {"connector_id": 1, "type": "Inoperative"}, "Scheduled"),
    ("trigger", {"requested_message": "StatusNotification", "connector_id": 1}, "TriggerMessage",
     {"requested_message": "StatusNotification", "connector_id": 1}, "Accepted"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "action", "received", "status"), COMMANDS)
async def test_command_reaches_the_charger_and_is_logged(site: Site, path, body, action, received, status) -> None:
    async with charge_point(site.csms.url, "CP1") as cp, site.client() as c:
        await eventually(lambda: "CP1" in site.csms.connected)
        r = await c.post(f"/api/chargers/CP1/{path}", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"cp_id": "CP1", "action": action, "result": {"status": status}}
        assert (await cp.wait_for(action))[0] == received
    await site.csms.flush()
    [logged] = site.csms.store.events(cp_id="CP1", kind="api_command")
    assert logged.data["who"] == "alice" and logged.data["action"] == action and logged.data["outcome"] == status
    assert {k: v for k, v in logged.data["request"].items() if v is not None} == body


async def test_offline_charger_is_409_and_unknown_is_404(site: Site) -> None:
    async with site.client() as c:
        r = await c.post("/api/chargers/CP2/reset", json={"type": "Soft"})
        assert r.status_code == 409 and r.json()["message"] == "charger 'CP2' is offline"
        r = await c.post("/api/chargers/NOPE/reset", json={"type": "Soft"})
        assert r.status_code == 404 and "NOPE" in r.json()["message"]
    await site.csms.flush()
    assert [e.data["outcome"] for e in site.csms.store.events(kind="api_command")] == ["offline"]


async def test_a_callerror_is_502_with_the_chargers_code(site: Site) -> None:
    # The test charger has no ClearCache handler: the ocpp library answers with a CALLERROR.
    async with charge_point(site.csms.url, "CP1"), site.client() as c:
        await eventually(lambda: "CP1" in site.csms.connected)
        r = await c.post("/api/chargers/CP1/clear-cache")
    assert r.status_code == 502
    assert r.json()["code"] == "NotImplemented"
    assert "CALLERROR" in r.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("remote-start", {"connector_id": 1}, "body.id_tag: Field required"),
        ("remote-start", {"id_tag": "X" * 21}, "body.id_tag: String should have at most 20 characters"),
        ("remote-stop", {"transaction_id": "seven"}, "body.transaction_id: Input should be a valid integer"),
        ("reset", {"type": "Warm"}, "body.type: Input should be 'Soft' or 'Hard'"),
        ("unlock", {"connector_id": 0}, "body.connector_id: Input should be greater than or equal to 1"),
        ("availability", {"connector_id": 1}, "body.type: Field required"),
        ("trigger", {"requested_message": "Nope"}, "body.requested_message: Input should be"),
        ("reset", {"type": "Soft", "extra": 1}, "body.extra: Extra inputs are not permitted"),
    ],
)
async def test_bad_command_bodies_are_422_naming_the_field(site: Site, path: str, body, field: str) -> None:
    async with site.client() as c:
        r = await c.post(f"/api/chargers/CP1/{path}", json=body)
    assert r.status_code == 422
    assert r.json()["message"].startswith(field)


async def test_site_limit_is_published_applied_and_never_above_the_rating(site: Site) -> None:
    sub = site.runtime.bus.subscribe(topics.LOADMGMT_SITE_LIMIT)
    rating = 400 * 208 * 3**0.5 / 1000 * 0.8
    async with site.client() as c:
        r = await c.post("/api/site/limit", json={"limit_kw": rating + 0.1, "minutes": 10})
        assert r.status_code == 422
        assert r.json()["message"].startswith("limit_kw: ") and "continuous rating (115.3 kW)" in r.json()["message"]
        r = await c.post("/api/site/limit", json={"limit_kw": 0, "minutes": 10})
        assert r.status_code == 422 and r.json()["message"].startswith("body.limit_kw")
        r = await c.post("/api/site/limit", json={"limit_kw": 40, "minutes": 10})
        assert r.status_code == 200
        assert r.json()["continuous_rating_kw"] == pytest.approx(rating)
        _, override = sub.get_nowait()
        assert override == SiteLimitOverride(40.0, site.clock.now() + timedelta(minutes=10), "alice")
        await eventually(lambda: site.runtime.api.ctx.live.limit_kw() == 40.0)
        assert (await c.get("/api/site")).json()["limit_kw"] == 40.0
        await site.clock.advance(601)
        assert (await c.get("/api/site")).json()["limit_kw"] == pytest.approx(rating)
    await site.csms.flush()
    kinds = [(e.data["limit_kw"], e.data["outcome"]) for e in site.csms.store.events(kind="api_site_limit")]
    assert kinds == [(rating + 0.1, "refused: above rating"), (40, "published")]


async def test_replan_is_published_with_who_asked(site: Site) -> None:
    sub = site.runtime.bus.subscribe(topics.LOADMGMT_REPLAN)
    async with site.client() as c:
        r = await c.post("/api/plan/replan")
    assert r.status_code == 202 and r.json() == {"requested_by": "alice"}
    assert sub.get_nowait() == (topics.LOADMGMT_REPLAN, "alice")


async def test_id_tags_from_the_api_live_in_the_store_and_config_tags_are_409(site: Site) -> None:
    async with site.client() as c:
        r = await c.post("/api/id-tags", json={"id_tag": "TAG-OK", "status": "Blocked"})
        assert r.status_code == 409
        assert r.json()["message"] == f"id tag 'TAG-OK' is defined in {site.runtime.config_path}: change it there"
        assert (await c.delete("/api/id-tags/TAG-OK")).status_code == 409
        assert (await c.delete("/api/id-tags/NOPE")).status_code == 404
        r = await c.post("/api/id-tags", json={"id_tag": "FLEET-1", "expiry_date": "2030-01-01T00:00:00"})
        assert r.status_code == 422 and r.json()["message"].startswith("expiry_date")
        r = await c.post("/api/id-tags", json={"id_tag": "FLEET-1"})
        assert r.status_code == 201
        assert site.csms.id_tag_info("FLEET-1") == {"status": "Accepted"}
        tags = {t["id_tag"]: (t["status"], t["owner"]) for t in (await c.get("/api/id-tags")).json()}
        assert tags == {"TAG-OK": ("Accepted", "config"), "FLEET-1": ("Accepted", "store")}
        assert (await c.delete("/api/id-tags/FLEET-1")).json() == {"id_tag": "FLEET-1", "status": "Blocked"}
    assert site.csms.id_tag_info("FLEET-1") == {"status": "Blocked"}
    async with charge_point(site.csms.url, "CP1") as cp:
        assert (await cp.call(call.Authorize(id_tag="FLEET-1"))).id_tag_info["status"] == "Blocked"
    await site.csms.flush()
    assert [e.kind for e in site.csms.store.events() if e.kind.startswith("api_")] == [
        "api_id_tag_set",
        "api_id_tag_revoked",
    ]


async def test_chargers_added_through_the_api_can_connect_and_be_removed(site: Site) -> None:
    async with site.client() as c:
        r = await c.post("/api/chargers", json={"id": "CP1"})
        assert r.status_code == 409 and "CP1" in r.json()["message"] and "config.toml" in r.json()["message"]
        assert (await c.delete("/api/chargers/CP1")).status_code == 409
        r = await c.post("/api/chargers", json={"id": "bad id"})
        assert r.status_code == 422 and r.json()["message"].startswith("body.id")
        assert (await c.post("/api/chargers", json={"id": "CP-NEW"})).status_code == 201
        assert (await c.post("/api/chargers", json={"id": "CP-NEW"})).status_code == 409
        async with charge_point(site.csms.url, "CP-NEW") as cp:
            res = await cp.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            assert res.status == "Accepted"
            owner = (await c.get("/api/chargers/CP-NEW")).json()["owner"]
            assert owner == "store"
        assert (await c.delete("/api/chargers/CP-NEW")).status_code == 200
        assert (await c.get("/api/chargers/CP-NEW")).status_code == 404
        assert (await c.delete("/api/chargers/CP-NEW")).status_code == 404
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        async with charge_point(site.csms.url, "CP-NEW"):
            pass


async def test_departure_is_validated_and_published_for_an_open_session(site: Site) -> None:
    store = site.csms.store
    now = site.clock.now()
    open_tx, _ = store.start_transaction("CP1", 1, "TAG-OK", 0, now - timedelta(hours=1), "Accepted")
    closed_tx, _ = store.start_transaction("CP1", 2, "TAG-OK", 0, now - timedelta(hours=2), "Accepted")
    store.stop_transaction("CP1", closed_tx, 5000, now - timedelta(minutes=30), "Local", "TAG-OK")
    sub = site.runtime.bus.subscribe(topics.LOADMGMT_DEPARTURE)
    leave = (now + timedelta(hours=3)).isoformat()
    async with site.client() as c:
        r = await c.post(f"/api/transactions/{open_tx + 99}/departure", json={"departure_at": leave})
        assert r.status_code == 404 and f"no transaction {open_tx + 99}" in r.json()["message"]
        r = await c.post(f"/api/transactions/{closed_tx}/departure", json={"departure_at": leave})
        assert r.status_code == 409 and "ended at" in r.json()["message"]
        r = await c.post(f"/api/transactions/{open_tx}/departure", json={"departure_at": "2026-01-01T10:00:00"})
        assert r.status_code == 422 and r.json()["message"].startswith("departure_at: give the UTC offset")
        past = (now - timedelta(minutes=1)).isoformat()
        r = await c.post(f"/api/transactions/{open_tx}/departure", json={"departure_at": past})
        assert r.status_code == 422 and "is not after now" in r.json()["message"]
        r = await c.post(f"/api/transactions/{open_tx}/departure", json={"departure_at": leave, "energy_kwh": -1})
        assert r.status_code == 422 and r.json()["message"].startswith("body.energy_kwh")
        assert sub.get_nowait() is None  # nothing refused was published
        r = await c.post(f"/api/transactions/{open_tx}/departure", json={"departure_at": leave, "energy_kwh": 12.5})
        assert r.status_code == 200 and r.json()["cp_id"] == "CP1" and r.json()["who"] == "alice"
    published = sub.get_nowait()
    assert published is not None and sub.get_nowait() is None
    assert published[1] == DepartureUpdate("CP1", open_tx, now + timedelta(hours=3), 12.5, "alice")
    await site.csms.flush()
    outcomes = [e.data["transaction_id"] for e in site.csms.store.events(kind="api_departure")]
    assert outcomes == [open_tx]
