"""`evsite regulate` end to end (in-process, small fleets and short runs) and its errors."""

from __future__ import annotations

import re

import pytest

from evsite.cli import main


@pytest.fixture
def regd(shared_data) -> str:
    return str(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv")


def test_regulate_prints_capacity_score_and_driver_impact(regd: str, tmp_path, capsys) -> None:
    model = tmp_path / "a.npz"
    rc = main(["regulate", "--evs", "1500", "--signal", regd, "--hours", "0.25", "--start", "08:00",
               "--save-model", str(model)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"capacity offered: mean \d+\.\d\d MW", out)
    assert re.search(r"next-interval capacity .*: up \d+\.\d\d MW, down \d+\.\d\d MW", out)
    assert re.search(r"PJM performance: accuracy 0?\.\d{3}|accuracy 1\.000", out)
    m = re.search(r"composite score: (\d\.\d\d) \((pass|FAIL)", out)
    assert m and 0.75 <= float(m.group(1)) <= 1.0 and m.group(2) == "pass"
    assert re.search(r"boundary handling on : next-step", out) and "boundary handling off" in out
    assert re.search(r"drivers: [\d,]+ departed; SoC at departure 0\.\d{3}", out)
    assert model.exists()
    # the saved model loads back and runs
    rc = main(["regulate", "--evs", "800", "--signal", regd, "--hours", "0.1", "--model", str(model)])
    assert rc == 0 and "loaded from" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--signal", "/nonexistent/sig.csv"], "signal file not found"),
        (["--start", "25:00"], "not a time of day"),
        (["--start", "noon"], "expected HH:MM"),
        (["--hours", "30"], "the signal covers 48.00 h"),
        (["--model", "/nonexistent/a.npz"], "not a saved state-space model"),
    ],
)
def test_user_mistakes_are_clear_errors_without_traceback(regd: str, extra: list[str], message: str, capsys) -> None:
    args = ["regulate", "--evs", "200", "--signal", regd, *extra]
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
