"""`evsite regulate` end to end (in-process, small fleets and short runs), its export and its errors."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from evsite.cli import main


@pytest.fixture
def regd(shared_data) -> str:
    return str(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv")


def test_regulate_prints_hourly_offers_score_switches_and_drivers(regd: str, tmp_path, capsys) -> None:
    model = tmp_path / "a.npz"
    export = tmp_path / "run.csv"
    rc = main(["regulate", "--evs", "400", "--signal", regd, "--hours", "2", "--start", "16:00",
               "--save-model", str(model), "--export", str(export)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"^16:00 +-?\d+\.\d{3} +\d+\.\d{3}", out, re.M) and re.search(r"^17:00 ", out, re.M)
    assert re.search(r"capacity offered: mean \d+\.\d\d MW .*fixed before each hour", out)
    m = re.search(r"composite score: (\d\.\d\d) \((pass|FAIL)", out)
    assert m and 0.75 <= float(m.group(1)) <= 1.0 and m.group(2) == "pass"
    assert re.search(r"mode switches per car-hour mean \d+\.\d\d, median \d+\.\d\d, p95 \d+\.\d\d", out)
    assert re.search(r"drivers: [\d,]+ departed; SoC at departure 0\.\d{3}", out)
    assert model.exists()
    df = pd.read_csv(export)
    assert list(df.columns) == ["time", "signal", "response", "capacity_kw", "base_kw"]
    assert len(df) == 3600 and df["time"].iloc[0] == "2020-07-16T16:00:00-04:00"
    assert df["time"].iloc[1] == "2020-07-16T16:00:02-04:00"
    sig = pd.read_csv(regd)["regd"].to_numpy()[16 * 1800 : 18 * 1800]
    assert df["signal"].to_numpy() == pytest.approx(sig, abs=1e-5)
    assert (tmp_path / "run.csv-16.png").exists() and (tmp_path / "run.csv-17.png").exists()
    # anyone can rescore the run from the export alone: the same composite
    from planning.pjm_score import score_hourly

    rescored = score_hourly(df["signal"].to_numpy(), df["response"].to_numpy())
    assert rescored.composite == pytest.approx(float(m.group(1)), abs=0.006)
    # the saved model loads back and runs
    rc = main(["regulate", "--evs", "200", "--signal", regd, "--hours", "0.2", "--model", str(model)])
    assert rc == 0 and "loaded from" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--signal", "/nonexistent/sig.csv"], "signal file not found"),
        (["--start", "25:00"], "not a time of day"),
        (["--start", "noon"], "expected HH:MM"),
        (["--hours", "50"], "the signal covers 48.00 h"),
        (["--model", "/nonexistent/a.npz"], "not a saved state-space model"),
        (["--signal-tz", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_user_mistakes_are_clear_errors_without_traceback(regd: str, extra: list[str], message: str, capsys) -> None:
    args = ["regulate", "--evs", "200", "--signal", regd, "--hours", "0.1", *extra]
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("bad", [["--evs", "0"], ["--evs", "many"], ["--v2g-share", "1.5"], ["--latency-s", "-1"]])
def test_bad_numbers_are_rejected_by_the_parser(regd: str, bad: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["regulate", "--signal", regd, *bad])
    assert exc.value.code == 2 and "evsite regulate: error" in capsys.readouterr().err


def test_no_signal_given(capsys) -> None:
    assert main(["regulate", "--evs", "10"]) == 2
    assert "no signal" in capsys.readouterr().err
