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
