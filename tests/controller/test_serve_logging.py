"""`evsite serve` logs: connects and boots are logged, normal goodbyes are not errors, JSON mode is all JSON,
and peer-supplied strings cannot forge a text log line. Against a real process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from controller.store import Store
from tests.controller.serve_process import serve_process
from tests.waiting import eventually

BAD_IDS = {"LF%0Ainjected": "LF\ninjected", "NUL%00": "NUL\x00", "plug%F0%9F%94%8C": "plug\U0001f50c", "..": ".."}


def _config(tmp_path: Path, fmt: str) -> Path:
    cfg = tmp_path / f"{fmt}.toml"
    cfg.write_text(
        f'[logging]\nformat = "{fmt}"\n[server]\nport = 0\nallow_unknown_chargers = true\ncall_timeout_s = 5\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "site.db"}"\n[[chargers]]\nid = "CP1"\n'
    )
    return cfg


async def _status(url: str) -> int:
    with pytest.raises(InvalidStatus) as err:
        async with connect(url, subprotocols=["ocpp1.6"], open_timeout=5):
            pass
    return err.value.response.status_code


async def _normal_life(url: str) -> None:
    boot = json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    for _ in range(2):  # boot, receive the after-boot GetConfiguration, and leave without answering it
        async with connect(url + "CP1", subprotocols=["ocpp1.6"]) as ws:
            await ws.send(boot)
            assert json.loads(await ws.recv())[0] == 3
            assert json.loads(await ws.recv())[2] == "GetConfiguration"
    ws = await connect(url + "CP1", subprotocols=["ocpp1.6"])
    await ws.send(json.dumps([2, "h", "Heartbeat", {}]))
    await ws.close()  # closes normally while the answer is on its way


def test_json_mode_is_all_json_and_normal_events_are_not_errors(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "json")
    with serve_process(cfg) as srv:

        async def scenario() -> None:
            await _normal_life(srv.url)
            for raw in BAD_IDS:
                assert await _status(srv.url + raw) == 400
            await eventually(lambda: srv.count("charger_disconnected") >= 3, 10, "three disconnects logged")

        asyncio.run(scenario())
    docs = [json.loads(line) for line in srv.lines()]  # every line parses, or this raises
    assert not [d for d in docs if d["level"] in ("error", "critical")]
    assert "never retrieved" not in srv.log.read_text()
    names = [d["event"] for d in docs]
    assert names.count("charger_connected") == 3 and names.count("charger_booted") == 2
    assert "serve_listening" in names
    refused = [d for d in docs if d["event"] == "connection_refused"]
    assert sorted(d["cp_id"] for d in refused) == sorted(BAD_IDS.values())
    assert {d["why"] for d in refused} == {"invalid_cp_id"}
    store = Store.open(f"sqlite:///{tmp_path / 'site.db'}")
    try:
        assert [r.id for r in store.charge_points()] == ["CP1"]  # nothing registered for the bad ids
    finally:
        store.close()


def test_text_mode_escapes_what_a_peer_sent(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "text")
    with serve_process(cfg) as srv:
        assert asyncio.run(_status(srv.url + "LF%0Ainjected")) == 400
        asyncio.run(eventually(lambda: srv.count("connection_refused") == 1, 10, "the refusal logged"))
    lines = srv.lines()
    (refusal,) = [line for line in lines if "connection_refused" in line]
    assert 'cp_id="LF\\ninjected"' in refusal
    assert not [line for line in lines if line.startswith("injected")]  # no forged line
