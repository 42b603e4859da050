"""Ctrl-C on every long command: a real ``python -m evsite`` process gets SIGINT once it has printed its first
progress line, prints what it finished so far and exits 130 (``evsite simulate``'s own test is in
tests/controller/test_cli_behaviour.py). ``evsite serve`` stops cleanly: 130 on SIGINT, 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pandas as pd

from tests.controller.test_serve_cli import write_config


async def _interrupt(args: list[str], progress: bytes, stream: str = "stderr") -> tuple[int, str, str]:
    """Run ``evsite *args``, SIGINT it after the first line containing ``progress`` on ``stream``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evsite", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    reader = proc.stderr if stream == "stderr" else proc.stdout
    assert reader is not None
    seen = b""
    async with asyncio.timeout(60):
        while progress not in seen:
            line = await reader.readline()
            assert line, f"ended before any progress line: {seen.decode()}"
            seen += line
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    if stream == "stderr":
        err = seen + err
    else:
        out = seen + out
    assert proc.returncode is not None
    assert "Traceback" not in err.decode(), err.decode()
    return proc.returncode, out.decode(), err.decode()


async def test_plan_shows_the_buildings_planned_so_far(tmp_path: Path, shared_data: Path) -> None:
    doe = shared_data / "buildings" / "doe-reference" / "crb_electric_kw_Baltimore.csv"
    wide = pd.read_csv(doe, index_col=0).iloc[: 24 * 30]
    wide.index.name = "timestamp"
    wide.to_csv(tmp_path / "site.csv")
    cfg = tmp_path / "config.toml"
    cfg.write_text('[service]\nrating_a = 2000\nvoltage_v = 480\nphases = 3\n[planning]\nsite_timezone = "UTC"\n')
    args = ["plan", "--meter", str(tmp_path / "site.csv"), "--config", str(cfg), "--out", str(tmp_path / "out")]
    code, out, err = await _interrupt([*args, "--workers", "1", "--no-plots"], b"planning 1/")
    assert code == 130
    assert "evsite plan: interrupted (Ctrl-C); summary so far:" in err
    done = re.search(r"planned (\d+)/(\d+) meter point\(s\) before Ctrl-C", out)
    assert done is not None and 1 <= int(done.group(1)) < int(done.group(2)) == wide.shape[1]
    assert wide.columns[0] in out  # the first building's row of the table
    assert not (tmp_path / "out" / "plan.json").exists()


async def test_replay_shows_the_policy_rows_finished_so_far(shared_data: Path) -> None:
    sessions = shared_data / "ev-sessions" / "acn_caltech_sessions.csv"
    args = [
        "replay",
        "--sessions",
        str(sessions),
        "--cap-fraction",
        "0.3",
        "--from",
        "2021-03-01",
        "--to",
        "2021-05-31",
    ]
    code, out, err = await _interrupt(args, b"policy 1/8 done")
    assert code == 130
    assert "evsite replay: interrupted (Ctrl-C); summary so far:" in err
    rows = [line.split()[0] for line in out.splitlines() if re.match(r"^\w[\w-]+ +\d+\.\d+% ", line)]
    assert rows[:1] == ["equal"] and 1 <= len(rows) < 8
    assert "offline-optimum-sessions" not in rows


async def test_regulate_shows_the_hours_scored_so_far(shared_data: Path) -> None:
    regd = shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv"
    args = ["regulate", "--evs", "200", "--signal", str(regd), "--hours", "40"]
    code, out, err = await _interrupt(args, b"hour 1/40 simulated")
    assert code == 130
    done = re.search(r"interrupted \(Ctrl-C\); summary so far: (\d+) whole hour\(s\) of 40", err)
    assert done is not None and 1 <= int(done.group(1)) < 40
    hour_rows = [line for line in out.splitlines() if re.match(r"^\d\d:00 ", line)]
    assert len(hour_rows) == int(done.group(1))
    assert re.search(r"composite score over the \d+ scored hour\(s\) done: \d\.\d\d", out)


async def test_demo_shows_the_figures_so_far(tmp_path: Path) -> None:
    args = ["demo", "--out", str(tmp_path / "demo"), "--chargers", "2", "--hours", "48", "--speed", "3600"]
    code, out, err = await _interrupt([*args, "--no-dashboard"], b"simulated 1/48 h", stream="stdout")
    assert code == 130, err
    assert "evsite demo: interrupted (Ctrl-C); summary so far:" in err
    assert re.search(r"energy delivered +\d+\.\d kWh", out) and "against the limit" in out
    assert re.search(r"simulated / wall time +(\d+\.\d+) h", out)


async def test_serve_exits_130_on_sigint_and_0_on_sigterm(tmp_path: Path) -> None:
    for sig, expected in ((signal.SIGINT, 130), (signal.SIGTERM, 0)):
        cfg = write_config(tmp_path, tmp_path / f"{sig.name}.db")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "evsite", "serve", "--config", str(cfg), stderr=asyncio.subprocess.PIPE
        )
        assert proc.stderr is not None
        async with asyncio.timeout(30):
            while b"listening on" not in await proc.stderr.readline():
                pass
        proc.send_signal(sig)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == expected, err.decode()
        assert ("stopped cleanly" in err.decode()) == (sig == signal.SIGINT)
