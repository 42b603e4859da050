"""The demo runs the real components end to end; these tests hold it to what it prints."""

from pathlib import Path

import numpy as np

from evsite.cli.demo_run import ev_over_limit_kw, run_demo
from evsite.config import Config


def _profile(limits_w: list[int]) -> dict:
    return {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Recurring",
        "recurrencyKind": "Daily",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 3600 * i, "limit": w} for i, w in enumerate(limits_w)],
        },
    }


def test_over_limit_allows_for_meter_lag_only():
    profile = _profile([20_000] + [10_000] * 23)
    # 15 kW seen 2 minutes into hour 1: within the lag after the drop from 20 kW, so not an excess.
    assert ev_over_limit_kw([(3720.0, 50.0, 15.0)], profile, lag_s=300) == 0.0
    # The same power 10 minutes in is 5 kW above the limit.
    assert np.isclose(ev_over_limit_kw([(4200.0, 50.0, 15.0)], profile, lag_s=300), 5.0)


async def test_demo_plans_serves_simulates_and_keeps_the_limit(tmp_path: Path):
    from datetime import UTC, datetime

    from controller.store import Store

    earlier = Store.open(f"sqlite:///{tmp_path / 'demo.db'}")  # a previous run's store: must not be counted
    earlier.register_charge_point("EARLIER-RUN", datetime(2026, 1, 1, tzinfo=UTC))
    earlier.close()
    lines: list[str] = []
    seen: list = []
    report = await run_demo(Config(), tmp_path, chargers=3, connectors=2, hours=3.0, speed=3600.0, seed=1,
                            progress=lines.append, dashboard=True, on_report=seen.append)  # fmt: skip
    assert seen == [report]
    store = Store.open(f"sqlite:///{tmp_path / 'demo.db'}")
    assert store.charge_point("EARLIER-RUN") is None and len(store.transactions()) == report.transactions
    store.close()
    # Progress: the dashboard's address first, then one line per simulated hour.
    assert lines[0].startswith("dashboard: http://127.0.0.1:") and report.dashboard_url in lines[0]
    hourly = [line for line in lines if line.startswith("simulated ")]
    assert [line.split(":")[0] for line in hourly] == ["simulated 1/3 h", "simulated 2/3 h", "simulated 3/3 h"]
    assert all("against a limit of 115.3 kW" in line for line in hourly)
    # The report folder: Markdown with the same numbers, and the plot.
    md = (tmp_path / "report.md").read_text()
    assert report.report_path == str(tmp_path / "report.md")
    assert f"| violations | {report.ground_truth['violations']} |" in md
    assert f"| chargers with load management | {report.chargers_with_lm} |" in md
    assert report.ev_kwh_per_charger_day > 0 and f"{report.ev_kwh_per_charger_day:g} kWh per charger-day" in md
    assert f"{report.transactions} ({report.transactions_closed} closed)" in md and "fresh for this run" in md
    assert "What to try next" in md and (tmp_path / "load_vs_limit.png").stat().st_size > 10_000
    assert "## What the numbers mean" in md and "violations: runs of simulated seconds" in md
    assert (tmp_path / "chargers.png").stat().st_size > 10_000  # per-charger power and limits
    assert (tmp_path / "plan" / "plots" / "demo-building" / "profiles.png").is_file()  # the plan's clusters
    # Live load management: a fail-safe per charger and live limits per connector, all accepted.
    assert report.profiles_sent >= 3 + 6 and report.profiles_accepted == report.profiles_sent
    truth = report.ground_truth
    assert truth["violations"] == 0 and truth["peak_kw"] <= truth["limit_kw"], truth
    assert truth["sessions"] > 0 and 0 < truth["energy_delivered_kwh"] <= truth["energy_requested_kwh"]
    assert report.transactions > 0
    assert report.energy_kwh > 0
    assert report.meter_values > 0
    assert report.chargers_with_lm >= report.chargers_without_lm > 0
    assert report.ev_peak_over_limit_kw <= 0.5
    assert len(report.hours) >= 2
    assert (tmp_path / "plan" / "plan.json").is_file()
    assert (tmp_path / "demo.db").is_file()


def test_demo_regulation_needs_a_signal(tmp_path: Path, capsys, monkeypatch) -> None:
    from evsite.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--regulation", "--out", str(tmp_path / "out")]) == 2
    assert "--regulation needs a RegD signal" in capsys.readouterr().err
    assert main(["demo", "--regulation", "--signal", str(tmp_path / "none.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"evsite demo: {tmp_path / 'none.csv'}: signal file not found"
    assert not (tmp_path / "out").exists()


def test_demo_regulation_hour_is_scored_and_reported(tmp_path: Path, shared_data: Path) -> None:
    import io

    from rich.console import Console

    from evsite.cli.demo import _regulation_hour

    md = tmp_path / "report.md"
    md.write_text("# evsite demo report\n")
    signal = shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv"
    score = _regulation_hour(Console(file=io.StringIO()), str(signal), 0, md)
    assert score is not None and score.startswith("composite score: 0.")
    text = md.read_text()
    assert "## 4. An hour of frequency regulation" in text and score in text and "2,000 EVs" in text
