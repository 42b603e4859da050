"""Charge point ids: printable ASCII without separators, 20 characters by default (up to 48 configured);
ids already stored that break the rule keep working, with a warning."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from controller.charger_ids import cp_id_problem
from controller.csms import CentralSystem
from controller.store import Store
from tests.controller.conftest import site_config
from tests.controller.ocpp_client import charge_point


@pytest.mark.parametrize(
    ("cp_id", "problem"),
    [
        ("LF\ninjected", "not printable ASCII"),
        ("NUL\x00", "not printable ASCII"),
        ("plug\U0001f50c", "not printable ASCII"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("user:pw", "separator"),
        ("a b", "not printable ASCII"),
        ("back\\slash", "separator"),
        ("X" * 21, "longer than 20"),
        ("", "empty"),
    ],
)
def test_rule_rejects_with_the_reason(cp_id: str, problem: str) -> None:
    assert problem in (cp_id_problem(cp_id, 20) or "")


@pytest.mark.parametrize("cp_id", ["CP1", "SIM-0001", "a.b_c~d*e+f=g@h", "X" * 20])
def test_rule_accepts_ordinary_ids(cp_id: str) -> None:
    assert cp_id_problem(cp_id, 20) is None


@pytest.mark.parametrize("path", ["LF%0Ainjected", "NUL%00", "plug%F0%9F%94%8C", "..", "a%3Ab", "X" * 21])
async def test_bad_ids_are_refused_before_anything_is_stored(make_csms, path: str) -> None:
    csms: CentralSystem = await make_csms(allow_unknown_chargers=True)
    with pytest.raises(InvalidStatus) as err:
        async with connect(csms.url + path, subprotocols=["ocpp1.6"], open_timeout=5):
            pass
    assert err.value.response.status_code == 400
    await csms.flush()
    assert {r.id for r in csms.store.charge_points()} == {"CP1", "CP2", "CP-AUTH"}


async def test_length_limit_is_configurable_up_to_48(make_csms) -> None:
    csms: CentralSystem = await make_csms(allow_unknown_chargers=True, max_cp_id_length=48)
    async with charge_point(csms.url, "L" * 48) as cp:
        await cp.call(call.Heartbeat())
    assert csms.store.charge_point("L" * 48) is not None


async def test_a_stored_id_that_breaks_the_rule_keeps_working_with_a_warning(
    db_url: str, make_csms, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(site_config(db_url).store.url)
    store.register_charge_point("OLD ID", datetime(2025, 1, 1, tzinfo=UTC))
    store.close()
    caplog.set_level(logging.WARNING)
    csms: CentralSystem = await make_csms()
    async with charge_point(csms.url, "OLD%20ID") as cp:
        await cp.call(call.Heartbeat())
        assert csms.connected == {"OLD ID"}
    warned = [r for r in caplog.records if r.getMessage() == "cp_id_nonconforming"]
    assert len(warned) == 1 and warned[0].evsite_fields["cp_id"] == "OLD ID"
