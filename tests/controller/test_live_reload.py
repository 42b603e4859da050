"""Operators edit config.toml while the site runs: good edits apply live, bad ones change nothing."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ocpp.v16 import call
from websockets.exceptions import InvalidStatus

from controller.runtime import SiteRuntime, restart_needed
from evsite.config import load_config, parse_config_text
from evsite.config_watch import TOPIC_REJECTED
from tests.controller.ocpp_client import charge_point
from tests.waiting import eventually

BASE = """
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
ADDED = '\n[[chargers]]\nid = "CP2"\n[[id_tags]]\nid_tag = "TAG-NEW"\n'


async def _authorize(url: str, cp_id: str, tag: str) -> str:
    async with charge_point(url, cp_id) as cp:
        return (await cp.call(call.Authorize(id_tag=tag))).id_tag_info["status"]


async def _refused(url: str, cp_id: str) -> int:
    with pytest.raises(InvalidStatus) as exc:
        async with charge_point(url, cp_id):
            pass
    return exc.value.response.status_code


async def test_edits_apply_live_and_bad_edits_change_nothing(tmp_path: Path, manual_clock) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE.format(db=tmp_path / "site.db"))
    site = SiteRuntime(load_config(path), manual_clock, config_path=path, config_poll_s=1.0)
    rejected = site.bus.subscribe(TOPIC_REJECTED)
    await site.start()
    url = site.csms.url
    try:
        assert await _refused(url, "CP2") == 404
        assert await _authorize(url, "CP1", "TAG-NEW") == "Invalid"

        path.write_text(path.read_text() + ADDED)
        await manual_clock.advance(1.0)
        # The apply task writes the store on the writer thread, then swaps the caches.
        await eventually(lambda: "CP2" in site.csms.registry.known, what="the reload applied")
        assert await _authorize(url, "CP2", "TAG-NEW") == "Accepted"

        good = path.read_text()
        path.write_text(good.replace('id = "CP2"', 'id = "CP2"\nmax_current_a = -1'))
        await manual_clock.advance(1.0)
        _topic, event = rejected.get_nowait()
        assert "chargers.1.max_current_a" in event.message
        assert site.watcher.current.chargers[1].max_current_a == 32.0  # running config kept
        assert await _authorize(url, "CP2", "TAG-NEW") == "Accepted"
    finally:
        await site.stop()


def test_restart_needed_names_the_bind_and_store_keys(tmp_path: Path) -> None:
    old = parse_config_text(BASE.format(db="a.db"))
    new = parse_config_text(BASE.format(db="b.db").replace("port = 0", "port = 9100"))
    assert restart_needed(old, new) == ["server.port", "store.url"]
    assert restart_needed(old, old) == []


def test_evsite_serve_reloads_its_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE.format(db=tmp_path / "site.db"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "evsite", "serve", "--config", str(path)], stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    started = threading.Event()

    def drain() -> None:  # keep the pipe empty so the server never blocks on logging
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                started.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert started.wait(30), "".join(lines)
        url = re.search(r"listening on (ws://\S+/ocpp/)", "".join(lines)).group(1)
        assert asyncio.run(_refused(url, "CP2")) == 404
        path.write_text(path.read_text() + ADDED)

        async def wait_accepted() -> str:
            # The file is polled every 2 s.
            await eventually(lambda: any("config_applied" in line for line in lines), 6.0, "config_applied")
            return await _authorize(url, "CP2", "TAG-NEW")

        assert asyncio.run(wait_accepted()) == "Accepted"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        reader.join(timeout=5)
    assert proc.returncode == 0, "".join(lines)
