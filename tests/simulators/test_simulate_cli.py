"""`evsite simulate` end to end (a subprocess against the recording server) and its operator-facing errors."""

from __future__ import annotations

import asyncio
import sys

from tests.simulators.recording_csms import RecordingCSMS


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "evsite",
        "simulate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_simulate_runs_for_the_simulated_hours_and_prints_a_summary() -> None:
    async with RecordingCSMS(interval_s=60) as csms:
        # 6 simulated hours at 7200x: 3 real seconds; the seed fleet's early group arrives within them.
        rc, out, err = await run_cli(
            "--url", csms.url, "--chargers", "3", "--connectors", "2", "--speed", "7200", "--hours", "6", "--seed", "1"
        )
        assert rc == 0, err
        assert "transactions started / stopped" in out and "energy delivered" in out
        assert {f.cp_id for f in csms.rec.calls("BootNotification")} == {"SIM0001", "SIM0002", "SIM0003"}
        assert csms.rec.calls("StartTransaction"), "no EV arrived in 6 simulated hours"
        assert csms.rec.errors == []


async def test_simulate_reports_operator_mistakes_without_traceback() -> None:
    rc, _, err = await run_cli("--url", "http://127.0.0.1:9/ocpp", "--hours", "0.1")
    assert rc == 1 and "not a ws:// or wss:// URL" in err and "Traceback" not in err
    rc, _, err = await run_cli("--chargers", "-3")
    assert rc == 2 and "--chargers: must be > 0" in err
    async with RecordingCSMS() as csms:
        rc, _, err = await run_cli("--url", csms.url, "--fleet", "sessions", "--hours", "0.1")
        assert rc == 2 and "--sessions-csv" in err and "Traceback" not in err
