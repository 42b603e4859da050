"""Reliability of a real `evsite serve` process: the offline sweep, a wrong-password flood, live reload of
chargers, tags and server settings, and the write-behind loss window under ``kill -9``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from controller.store import Store
from evsite.passwords import hash_password
from tests.controller.ocpp_client import basic_auth, charge_point
from tests.controller.serve_process import serve_process
from tests.controller.test_live_reload import _authorize, _refused
from tests.waiting import eventually


def _write(cfg: Path, db: Path, server: str = "", store: str = "", rest: str = "") -> Path:
    port = "" if "port =" in server else "port = 0\n"
    cfg.write_text(
        f'[logging]\nformat = "json"\n[server]\n{port}{server}\n[store]\nurl = "sqlite:///{db}"\n{store}\n{rest}'
    )
    return cfg


def _read(db: Path, fn):
    store = Store.open(f"sqlite:///{db}")
    try:
        return fn(store)
    finally:
        store.close()


def test_silent_charger_goes_offline_with_stale_status_and_comes_back(tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    cfg = _write(
        tmp_path / "c.toml",
        db,
        "heartbeat_interval_s = 1\nheartbeat_timeout_factor = 2",
        "max_unsaved_s = 0",
        '[[chargers]]\nid = "CP1"\n',
    )
    with serve_process(cfg) as srv:

        async def scenario() -> None:
            async with charge_point(srv.url, "CP1") as cp:
                await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
                assert _read(db, lambda s: s.charge_point("CP1").online) is True
                # Silent (its socket still answers pings) for more than 2 x 1 s.
                await eventually(
                    lambda: _read(db, lambda s: s.charge_point("CP1").online) is False, 20, "offline in the store"
                )
                assert _read(db, lambda s: (s.connectors("CP1")[0].status, s.connectors("CP1")[0].stale)) == (
                    "Charging",
                    True,
                )
                await cp.call(call.Heartbeat())
                await eventually(lambda: _read(db, lambda s: s.charge_point("CP1").online), 10, "back online")

        asyncio.run(scenario())
        asyncio.run(eventually(lambda: srv.count('"reason": "disconnected"') >= 1, 10, "offline at close"))
    offline = [e["reason"] for e in srv.events("charger_offline")]
    assert offline == ["heartbeat_timeout", "disconnected"]
    assert [e["reason"] for e in srv.events("charger_online")] == ["connected", "message"]


PASSWORD = "the-real-one"


def test_real_charger_logs_in_during_a_wrong_password_flood_from_another_address(tmp_path: Path) -> None:
    # The production hash cost: the flood must not be able to buy that CPU time over and over.
    digest = hash_password(PASSWORD)
    cfg = _write(tmp_path / "a.toml", tmp_path / "a.db", "require_auth = true",
                 rest=f'[[chargers]]\nid = "CP-AUTH"\npassword_hash = "{digest}"\n')  # fmt: skip
    cfg.write_text(cfg.read_text().replace('format = "json"', 'format = "json"\nlevel = "debug"'))
    with serve_process(cfg) as srv:

        async def flood(stop: asyncio.Event) -> list[int]:
            statuses: list[int] = []

            async def one(i: int) -> None:
                try:
                    async with connect(srv.url + "CP-AUTH", subprotocols=["ocpp1.6"], open_timeout=30,
                                       additional_headers=basic_auth("CP-AUTH", f"guess-{i}"),
                                       local_addr=("127.0.0.2", 0)):  # fmt: skip
                        statuses.append(101)
                except InvalidStatus as err:
                    statuses.append(err.response.status_code)

            i = 0
            while not stop.is_set() or i < 150:
                await asyncio.gather(*(one(i + k) for k in range(50)))
                i += 50
            return statuses

        async def scenario() -> list[int]:
            stop = asyncio.Event()
            flooding = asyncio.create_task(flood(stop))
            await asyncio.sleep(0.3)  # the flood is under way
            async with charge_point(srv.url, "CP-AUTH", password=PASSWORD) as cp:
                await cp.call(call.Heartbeat())
            stop.set()
            return await flooding

        statuses = asyncio.run(scenario())
    assert statuses and 101 not in statuses
    assert set(statuses) <= {401, 429}
    assert len(srv.events("charger_connected")) == 1
    # The flood bought a handful of hashes (one per back-off window of 1, 2, 4 ... s), not one per handshake.
    flood_hashes = [e for e in srv.events("password_verified") if e["address"] == "127.0.0.2"]
    assert len(statuses) >= 100 and len(flood_hashes) <= 6


def test_live_reload_applies_what_it_says(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    chargers = '[[chargers]]\nid = "CP1"\n[[chargers]]\nid = "CP2"\n'
    tags = '[[id_tags]]\nid_tag = "TAG-A"\n[[id_tags]]\nid_tag = "TAG-B"\n'
    cfg = _write(tmp_path / "r.toml", db, rest=chargers + tags)

    async def authorize(url: str, tag: str) -> str:
        return await _authorize(url, "CP1", tag)

    def applied(srv, n: int) -> None:
        asyncio.run(eventually(lambda: len(srv.events("csms_config_applied")) >= n, 20, f"reload {n} applied"))

    with serve_process(cfg) as srv:
        assert asyncio.run(_refused(srv.url, "STRANGER")) == 404
        assert asyncio.run(authorize(srv.url, "TAG-A")) == "Accepted"
        port = int(srv.url.split(":")[2].split("/")[0])
        _write(cfg, db, "allow_unknown_chargers = true",
               rest='[[chargers]]\nid = "CP1"\n[[id_tags]]\nid_tag = "TAG-B"\nstatus = "Blocked"\n')  # fmt: skip
        applied(srv, 1)
        assert asyncio.run(authorize(srv.url, "TAG-A")) == "Invalid"  # removed from the config
        assert asyncio.run(authorize(srv.url, "TAG-B")) == "Blocked"
        assert asyncio.run(_refused(srv.url, "CP2")) == 404  # removed from the config, even with unknown allowed
        assert _read(db, lambda s: s.id_tag("TAG-A")) is None
        assert _read(db, lambda s: s.charge_point("CP2").removed_at) is not None

        async def stranger() -> None:
            async with charge_point(srv.url, "STRANGER") as cp:
                await cp.call(call.Heartbeat())

        asyncio.run(stranger())  # allow_unknown_chargers took effect at once
        assert srv.events("config_needs_restart") == []
        # The port in the file now names the socket actually bound: nothing to restart.
        _write(cfg, db, f"allow_unknown_chargers = true\nport = {port}",
               rest='[[chargers]]\nid = "CP1"\n')  # fmt: skip
        applied(srv, 2)
        assert srv.events("config_needs_restart") == []
        _write(cfg, db, f"allow_unknown_chargers = true\nport = {port + 1}", rest='[[chargers]]\nid = "CP1"\n')
        applied(srv, 3)
        assert [e["keys"] for e in srv.events("config_needs_restart")] == ["server.port"]


def test_kill_9_loses_nothing_acknowledged_with_a_zero_window(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    cfg = _write(tmp_path / "k.toml", db, "allow_unknown_chargers = true", "max_unsaved_s = 0")
    acked: set[int] = set()
    with serve_process(cfg, expect_exit=None) as srv:

        async def sender(n: int) -> None:
            async with connect(srv.url + f"K{n}", subprotocols=["ocpp1.6"]) as ws:
                for i in range(100_000):
                    value = n * 1_000_000 + i
                    mv = {"timestamp": "2026-03-02T08:00:00Z", "sampledValue": [{"value": str(value)}]}
                    await ws.send(json.dumps([2, str(i), "MeterValues", {"connectorId": 1, "meterValue": [mv]}]))
                    while (reply := json.loads(await ws.recv()))[0] == 2:  # load management's calls
                        await ws.send(json.dumps([3, reply[1], {"status": "Accepted"}]))
                    assert reply[:2] == [3, str(i)]
                    acked.add(value)

        async def flood_and_kill() -> None:
            tasks = [asyncio.create_task(sender(n)) for n in range(4)]
            await eventually(lambda: len(acked) >= 400, 60, "400 acknowledged MeterValues")
            os.kill(srv.proc.pid, signal.SIGKILL)  # mid-flood: more are in flight right now
            for t in tasks:
                with pytest.raises((ConnectionClosed, OSError)):
                    await t

        asyncio.run(flood_and_kill())
    stored = _read(db, lambda s: {int(m.value) for m in s.meter_values()})
    assert acked <= stored, f"{len(acked - stored)} acknowledged MeterValues lost"
