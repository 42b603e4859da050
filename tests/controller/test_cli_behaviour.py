"""Operator-facing behaviour shared by commands: `evsite simulate` against a real central system says when the
URL path is wrong (not "unknown ids"), and Ctrl-C ends it with a partial summary and exit code 130."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

from controller.csms import CentralSystem


async def _simulate(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evsite", "simulate", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_simulate_names_a_wrong_url_path(csms: CentralSystem) -> None:
    wrong = csms.url.replace("/ocpp/", "/wrong")
    proc = await _simulate("--url", wrong, "--chargers", "1", "--hours", "0.1")
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 1
    assert "the URL path /wrong/<id> was refused" in text and "the path is wrong" in text
    assert "unknown charge point ids" not in text


async def test_simulate_names_unknown_ids(csms: CentralSystem) -> None:
    proc = await _simulate("--url", csms.url, "--chargers", "1", "--hours", "0.1", "--prefix", "NOPE")
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and "unknown charge point ids" in err.decode()


async def test_simulate_ctrl_c_prints_a_partial_summary_and_exits_130(make_csms) -> None:
    csms: CentralSystem = await make_csms(allow_unknown_chargers=True)
    proc = await _simulate("--url", csms.url, "--chargers", "2", "--hours", "24", "--speed", "60")
    assert proc.stderr is not None
    seen = b""
    async with asyncio.timeout(30):
        while b"chargers online; simulating" not in seen:
            seen += await proc.stderr.readline()
    assert b"2 of 2 chargers online" in seen
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    assert "interrupted (Ctrl-C); summary so far" in err.decode()
    assert re.search(r"chargers \(online at end\) +2 \(2\)", out.decode()) and "energy delivered" in out.decode()
    assert "Traceback" not in err.decode()


async def test_simulate_reports_progress_per_simulated_hour(manual_clock, capsys) -> None:
    from types import SimpleNamespace

    from evsite.cli.simulate import _progress
    from simulators.site import Summary

    summary = Summary(chargers=4, connectors=8, simulated_hours=0, wall_s=0, transactions_started=3,
                      transactions_stopped=1, energy_kwh=12.5, messages_sent=0, messages_dropped_offline=0,
                      messages_pending=0, reconnects=0, profiles_accepted=0, profiles_rejected=0, evs_plugged=3,
                      evs_turned_away=0, chargers_online=4)  # fmt: skip
    site = SimpleNamespace(clock=manual_clock, summary=lambda: summary)
    task = asyncio.create_task(_progress(site, 24, min_wall_s=0.0))
    await asyncio.sleep(0)
    await manual_clock.advance(3600)
    await manual_clock.advance(3600)
    task.cancel()
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "evsite simulate: 1/24 h simulated; 4 of 4 chargers online; 3 transactions started; 12.5 kWh delivered",
        "evsite simulate: 2/24 h simulated; 4 of 4 chargers online; 3 transactions started; 12.5 kWh delivered",
    ]
