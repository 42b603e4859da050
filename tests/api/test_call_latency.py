"""``/metrics`` times every call the central system sends to a charger, not only the API's own: the router
(``evsite.ocppj.dispatch.Endpoint.call``) reports each call's end and the API's histogram counts it by action
and outcome."""

from __future__ import annotations

import re

from websockets.asyncio.client import connect

from tests.api.conftest import Site
from tests.controller.ocpp_client import charge_point
from tests.waiting import eventually


def _count(text: str, action: str, outcome: str) -> float:
    """The histogram's ``_count`` for one action and outcome (0 when the series does not exist yet)."""
    pattern = rf'evsite_ocpp_call_latency_seconds_count\{{action="{action}",outcome="{outcome}"\}} (\S+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


async def test_every_call_to_a_charger_is_timed_by_action_and_outcome(site: Site) -> None:
    async with site.client("read") as reader:
        before = (await reader.get("/metrics")).text
        assert _count(before, "GetConfiguration", "ok") == 0.0
        async with charge_point(site.csms.url, "CP1"):
            await eventually(lambda: "CP1" in site.csms.connected)
            # Sent by the central system itself (not through the API): the router still times it.
            answer = await site.csms.send("CP1", _get_configuration(), reason="test")
            assert answer.unknown_key == ["HeartbeatInterval"]  # the test charger answered
            after = (await reader.get("/metrics")).text
    assert _count(after, "GetConfiguration", "ok") == _count(before, "GetConfiguration", "ok") + 1
    assert re.search(
        r'evsite_ocpp_call_latency_seconds_bucket\{action="GetConfiguration",le="30.0",outcome="ok"\} 1', after
    )


async def test_a_call_nobody_answers_is_counted_as_a_timeout(make_site) -> None:
    site: Site = await make_site(server={"host": "127.0.0.1", "port": 0, "call_timeout_s": 0.3})
    # A charger that connects and never answers anything.
    async with connect(site.csms.url + "CP2", subprotocols=["ocpp1.6"], open_timeout=5):
        await eventually(lambda: "CP2" in site.csms.connected)
        async with site.client() as op:
            r = await op.post("/api/chargers/CP2/reset", json={"type": "Soft"})
        assert r.status_code == 504
        async with site.client("read") as reader:
            text = (await reader.get("/metrics")).text
    assert _count(text, "Reset", "timeout") == 1.0
    assert _count(text, "Reset", "ok") == 0.0


def _get_configuration():
    from ocpp.v16 import call

    return call.GetConfiguration(key=["HeartbeatInterval"])
