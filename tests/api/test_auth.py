"""Every endpoint refuses a request without a known token (401) and a read token on a write (403)."""

from __future__ import annotations

import pytest

from controller.api.auth import Caller, identify, token_digest
from evsite.config import ApiTokenConfig
from tests.api.conftest import TOKENS, Site

READS = [
    "/api/site",
    "/api/history",
    "/api/chargers",
    "/api/chargers/CP1",
    "/api/transactions",
    "/api/transactions?format=csv",
    "/api/meter-values",
    "/api/profiles",
    "/api/events",
    "/api/id-tags",
    "/api/plan",
    "/metrics",
]
WRITES = [
    ("POST", "/api/chargers/CP1/remote-start", {"id_tag": "TAG-OK"}),
    ("POST", "/api/chargers/CP1/remote-stop", {"transaction_id": 1}),
    ("POST", "/api/chargers/CP1/reset", {"type": "Soft"}),
    ("POST", "/api/chargers/CP1/unlock", {"connector_id": 1}),
    ("POST", "/api/chargers/CP1/availability", {"connector_id": 0, "type": "Inoperative"}),
    ("POST", "/api/chargers/CP1/trigger", {"requested_message": "Heartbeat"}),
    ("POST", "/api/chargers/CP1/clear-cache", None),
    ("POST", "/api/site/limit", {"limit_kw": 50, "minutes": 10}),
    ("POST", "/api/plan/replan", None),
    ("POST", "/api/id-tags", {"id_tag": "NEW"}),
    ("DELETE", "/api/id-tags/NEW", None),
    ("POST", "/api/chargers", {"id": "CP9"}),
    ("DELETE", "/api/chargers/CP9", None),
]


def test_identify_matches_digests_and_roles() -> None:
    tokens = [ApiTokenConfig(name="a", sha256=token_digest("t1"), role="operator")]
    assert identify("t1", tokens) == Caller("a", "operator")
    assert identify("t2", tokens) is None
    assert Caller("a", "operator").may("read") and not Caller("b", "read").may("operator")


async def test_every_read_needs_a_known_token(site: Site) -> None:
    async with site.client(None) as anon, site.client(None, headers={"Authorization": "Bearer nope"}) as wrong:
        for path in READS:
            r = await anon.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer"
            assert "missing bearer token" in r.json()["message"]
            r = await wrong.get(path)
            assert r.status_code == 401, path
            assert r.json()["message"] == "unknown bearer token"
        basic = await anon.get("/api/site", headers={"Authorization": "Basic YWxpY2U6eA=="})
        assert basic.status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_every_write_refuses_no_token_and_the_read_role(site: Site, method: str, path: str, body) -> None:
    async with site.client(None) as anon, site.client("read") as reader:
        assert (await anon.request(method, path, json=body)).status_code == 401
        r = await reader.request(method, path, json=body)
        assert r.status_code == 403
        assert r.json()["message"] == "needs the operator role; token 'reader' has the read role"
    await site.csms.flush()
    assert site.csms.store.events(kind="api_command") == []  # nothing was attempted


async def test_reads_work_with_both_roles_and_healthz_needs_none(site: Site) -> None:
    for role in ("read", "operator"):
        async with site.client(role) as c:
            assert (await c.get("/api/site")).status_code == 200
    async with site.client(None) as anon:
        r = await anon.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "up", "process": "up", "store": "up"}
        assert (await anon.get("/")).status_code == 200  # the page itself holds no data
        assert (await anon.get("/openapi.json")).json()["info"]["title"] == "evsite operator API"


async def test_a_token_added_to_the_running_config_works_without_restart(site: Site) -> None:
    cfg = site.runtime.config
    data = cfg.model_dump()
    data["api"]["tokens"].append({"name": "bob", "sha256": token_digest("bob-token"), "role": "read"})
    from evsite.config import parse_config

    site.runtime.config = parse_config(data)
    async with site.client(None, headers={"Authorization": "Bearer bob-token"}) as bob:
        assert (await bob.get("/api/site")).status_code == 200
    assert TOKENS["read"] != "bob-token"
