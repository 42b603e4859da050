"""``evsite status / chargers / transactions / send`` against a running site's API (real socket)."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v16 import call

from evsite.cli import main
from tests.api.conftest import TOKENS, Site
from tests.controller.ocpp_client import charge_point
from tests.waiting import eventually


async def run_cli(site: Site, capsys, *argv: str, role: str | None = "operator") -> tuple[int, str, str]:
    args = [*argv, "--url", site.url, "--config", str(site.runtime.config_path)]
    if role:
        args += ["--token", TOKENS[role]]
    code = await asyncio.to_thread(main, args)
    out, err = capsys.readouterr()
    return code, out, err


async def test_status_chargers_transactions_and_send(site: Site, capsys) -> None:
    async with charge_point(site.csms.url, "CP1") as cp:
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        tx = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                 timestamp="2026-03-02T07:00:00Z"))  # fmt: skip
        await site.csms.flush()
        code, out, _ = await run_cli(site, capsys, "status", role="read")
        assert code == 0
        assert "chargers: 1 of 2 online; open transactions: 1" in out
        assert "CP1" in out and "#1 Charging" in out and "limit 115.3 kW" in out

        # (the site runs without load management here: the API's own view names no profile sent yet)
        code, out, _ = await run_cli(site, capsys, "chargers", role="read")
        assert code == 0 and "Charging" in out and "no profile sent" in out and "last seen never" in out
        # CP1 stamped its StartTransaction 07:00 at the site's 08:00: its clock is an hour behind ours
        assert "clock -3600.0 s vs controller" in out and "clock not heard yet" in out  # CP2 never connected

        code, out, _ = await run_cli(site, capsys, "transactions", "--open", "--json", role="read")
        assert code == 0 and [t["id"] for t in json.loads(out)] == [tx.transaction_id]

        code, out, _ = await run_cli(site, capsys, "send", "CP1", "RemoteStopTransaction",
                                     json.dumps({"transaction_id": tx.transaction_id}))  # fmt: skip
        assert code == 0 and out.strip() == "CP1: RemoteStopTransaction -> status=Accepted"
        assert (await cp.wait_for("RemoteStopTransaction"))[0] == {"transaction_id": tx.transaction_id}
        code, out, _ = await run_cli(site, capsys, "send", "CP1", "trigger", '{"requested_message": "Heartbeat"}')
        assert code == 0 and "TriggerMessage" in out
        await cp.call(call.StopTransaction(meter_stop=2000, timestamp="2026-03-02T08:00:00Z",
                                           transaction_id=tx.transaction_id, reason="Remote"))  # fmt: skip
    await eventually(lambda: "CP1" not in site.csms.connected)
    await site.csms.flush()
    code, out, _ = await run_cli(site, capsys, "transactions", role="read")
    assert code == 0 and "2.000  Remote" in out and "1 transaction(s)" in out


@pytest.mark.parametrize(
    ("argv", "role", "code", "message"),
    [
        (("send", "CP1", "Explode"), "operator", 2, "unknown ACTION 'Explode'"),
        (("send", "CP1", "Reset", "{type: Soft}"), "operator", 2, "JSON: not valid JSON at column 2"),
        (("send", "CP1", "Reset", "[1]"), "operator", 2, "JSON: expected an object"),
        (("send", "CP1", "Reset", '{"type": "Warm"}'), "operator", 1, "HTTP 422: body.type: Input should be"),
        (("send", "CP2", "Reset"), "operator", 1, "HTTP 409: charger 'CP2' is offline"),
        (("send", "CP1", "Reset"), "read", 1, "HTTP 403: needs the operator role"),
        (("status",), None, 1, "no API token: set EVSITE_API_TOKEN"),
    ],
)
async def test_cli_errors_say_what_was_wrong(site: Site, capsys, monkeypatch, argv, role, code, message) -> None:
    monkeypatch.delenv("EVSITE_API_TOKEN", raising=False)
    got, out, err = await run_cli(site, capsys, *argv, role=role)
    assert got == code
    assert message in err and out == ""


def test_cli_says_when_the_api_is_not_running(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EVSITE_API_TOKEN", "x")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[api]\nport = 1\n")
    assert main(["status", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the API at http://127.0.0.1:1" in err and "[api] enabled" in err
