"""`evsite serve` as a real process: bad config exits non-zero, SIGTERM shuts down cleanly, data survives."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ocpp.v16 import call

from controller.store import Store
from tests.controller.ocpp_client import charge_point

EVSITE = [sys.executable, "-m", "evsite"]


def write_config(tmp_path: Path, db: Path) -> Path:
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
[store]
url = "sqlite:///{db}"
[[chargers]]
id = "CP1"
[[id_tags]]
id_tag = "TAG-OK"
"""
    )
    return cfg


@contextmanager
def serving(cfg: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start `evsite serve`, yield its URL (read from the startup line), SIGTERM it afterwards."""
    proc = subprocess.Popen(
        [*EVSITE, "serve", "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env={**os.environ}
    )
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            m = re.search(r"listening on (ws://\S+/ocpp/)", line)
            if m:
                url = m.group(1)
                break
        assert url, "no startup line"
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=20)[1]
        assert proc.returncode == 0, rest


def test_bad_config_exits_non_zero_with_the_key_path(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nport = "nine"\nfoo = 1\n')
    res = subprocess.run([*EVSITE, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "server.port" in res.stderr and "server.foo" in res.stderr
    assert "Traceback" not in res.stderr
    res = subprocess.run([*EVSITE, "serve", "--port", "99999"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "server.port" in res.stderr
    cfg.write_text('[[id_tags]]\nid_tag = "T"\nexpiry_date = "2027-01-01"\n')
    res = subprocess.run([*EVSITE, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "id_tags.0.expiry_date" in res.stderr


def test_unloadable_tls_certificate_is_a_clean_error(tmp_path: Path) -> None:
    cfg = tmp_path / "tls.toml"
    cfg.write_text(
        f'[server]\nport = 0\ntls_cert = "{tmp_path / "missing.pem"}"\ntls_key = "{tmp_path / "missing.key"}"\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "t.db"}"\n'
    )
    res = subprocess.run([*EVSITE, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "server.tls_cert" in res.stderr and "Traceback" not in res.stderr


def test_data_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    cfg = write_config(tmp_path, db)
    start = call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=10, timestamp="2026-03-02T08:00:00Z")

    async def first_life(url: str) -> int:
        async with charge_point(url, "CP1") as cp:
            await cp.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            await cp.wait_for("ChangeConfiguration", 2)
            tx = (await cp.call(start)).transaction_id
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
            await cp.call(
                call.MeterValues(connector_id=1, transaction_id=tx,
                                 meter_value=[{"timestamp": "2026-03-02T08:01:00Z", "sampledValue": [{"value": "55"}]}])
            )  # fmt: skip
            return tx

    async def second_life(url: str, tx: int) -> None:
        async with charge_point(url, "CP1") as cp:
            assert (await cp.call(start)).transaction_id == tx  # idempotent across the restart
            await cp.call(call.StopTransaction(meter_stop=70, timestamp="2026-03-02T08:10:00Z", transaction_id=tx))

    with serving(cfg) as (url, _):
        tx = asyncio.run(first_life(url))
    store = Store.open(f"sqlite:///{db}")
    try:
        cp = store.charge_point("CP1")
        assert (cp.vendor, cp.capabilities["NumberOfConnectors"]) == ("V", 2)
        assert store.connectors("CP1")[0].status == "Charging"
        assert [m.value for m in store.meter_values(transaction_id=tx)] == [55.0]
        assert store.transaction(tx).stop_time is None
    finally:
        store.close()
    with serving(cfg) as (url, _):
        asyncio.run(second_life(url, tx))
    store = Store.open(f"sqlite:///{db}")
    try:
        (row,) = store.transactions()
        assert (row.id, row.meter_start, row.meter_stop, row.unknown_start) == (tx, 10, 70, False)
        assert [e.kind for e in store.events(cp_id="CP1", kind="connected")] == ["connected", "connected"]
    finally:
        store.close()
