"""`evsite simulate --report`: the simulator's ground truth, also after Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from tests.simulators.recording_csms import RecordingCSMS

KEYS = {
    "limit_kw", "peak_kw", "seconds_over", "max_excess_kw", "violations", "energy_requested_kwh",
    "energy_delivered_kwh", "sessions", "sessions_served",
}  # fmt: skip


def _config(tmp_path: Path) -> Path:
    # 20 A at 400 V three-phase: 11.1 kW continuous; six uncontrolled 22 kW connectors exceed it.
    path = tmp_path / "config.toml"
    path.write_text("[service]\nrating_a = 20\nvoltage_v = 400\nphases = 3\n[site]\nresponse_s = 5\n")
    return path


async def _start(tmp_path: Path, url: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evsite", "simulate", "--config", str(_config(tmp_path)), "--url", url,
        "--chargers", "3", "--connectors", "2", "--speed", "7200", "--seed", "1", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_report_counts_uncontrolled_overload(tmp_path: Path) -> None:
    report = tmp_path / "truth.json"
    async with RecordingCSMS(interval_s=60) as csms:
        proc = await _start(tmp_path, csms.url, "--hours", "6", "--report", str(report), "--report-series")
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().strip().splitlines()
    doc = json.loads(report.read_text())
    assert KEYS <= set(doc) and doc["series"]
    assert doc["limit_kw"] == round(20 * 400 * 3**0.5 / 1000 * 0.8, 3)
    # Nobody limits the chargers here (the recording server sends no profile): the site goes over.
    assert doc["violations"] >= 1 and doc["peak_kw"] > doc["limit_kw"] and doc["seconds_over"] > 5
    assert lines[-1] == f"violations: {doc['violations']}"
    assert "7200x" in lines[-2]


async def test_ctrl_c_still_ends_with_the_violations_line(tmp_path: Path) -> None:
    async with RecordingCSMS(interval_s=60) as csms:
        proc = await _start(tmp_path, csms.url, "--hours", "100")
        await asyncio.sleep(4.0)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().strip().splitlines()
    assert lines and lines[-1].startswith("violations: "), (out.decode(), err.decode())
    assert int(lines[-1].split(": ")[1]) >= 0
