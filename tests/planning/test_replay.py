"""Replay of recorded sessions: conventions, every policy under the cap, the optima as ceilings, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evsite.cli import main
from planning.allocation.acn import SessionFileError, read_sessions
from planning.allocation.offline import offline_optimum_energy, offline_optimum_sessions
from planning.allocation.replay import prepare, score, simulate, uncontrolled, uncontrolled_peak_kw

TZ = "America/Los_Angeles"
ONLINE = ["equal", "priority", "edf", "llf", "mpc"]


def generated_sessions(n: int = 40, days: int = 2, seed: int = 3) -> pd.DataFrame:
    """Workplace-like sessions in the ACN CSV form: arrivals 7-11 h local, stays 1-10 h, 2-30 kWh."""
    rng = np.random.default_rng(seed)
    day = rng.integers(0, days, n)
    arrive = pd.Timestamp("2021-08-02", tz=TZ) + pd.to_timedelta(day * 24 + rng.uniform(7, 11, n), unit="h")
    stay = pd.to_timedelta(rng.uniform(1, 10, n), unit="h")
    return pd.DataFrame(
        {
            "sessionID": [f"s{i}" for i in range(n)],
            "stationID": [f"st-{i % 15}" for i in range(n)],
            "userID": [f"{i % 12:09d}" for i in range(n)],
            "timezone": TZ,
            "connectionTime_utc": arrive.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "disconnectTime_utc": (arrive + stay).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "kWhDelivered": rng.uniform(2, 30, n).round(3),
        }
    )


@pytest.fixture
def sessions_csv(tmp_path: Path) -> Path:
    path = tmp_path / "sessions.csv"
    generated_sessions(n=24).to_csv(path, index=False)
    return path


def grid(df: pd.DataFrame, tmp_path: Path, **kwargs):
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    return prepare(read_sessions(path), tz=TZ, **kwargs)


def test_conventions_floor_cap_and_drop(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "sessionID": ["a", "b", "dc"],
            "stationID": ["x", "y", "2-39-81-4550"],
            "connectionTime_utc": ["2021-08-02T15:04:00Z", "2021-08-02T15:00:00Z", "2021-08-02T16:00:00Z"],
            "disconnectTime_utc": ["2021-08-02T16:09:59Z", "2021-08-02T15:31:00Z", "2021-08-02T16:40:00Z"],
            "kWhDelivered": [5.0, 9.0, 40.0],
        }
    )
    rs = grid(df, tmp_path)
    assert rs.session_id == ("b", "a")  # sorted by arrival, the DC fast charger dropped
    assert rs.start == pd.Timestamp("2021-08-02", tz=TZ)
    # 08:04 local -> period 96 (08:00), 09:09:59 -> period 109; 08:00 -> 96, 08:31 -> 102
    np.testing.assert_array_equal(rs.arrival, [96, 96])
    np.testing.assert_array_equal(rs.departure, [102, 109])
    # b: 6 periods x 32 A x 208 V x 5 min = 3.328 kWh < 9 kWh delivered: capped. a: 5 kWh fits.
    np.testing.assert_allclose(rs.requested_kwh, [6 * 32 * 0.208 / 12, 5.0])


def test_uncontrolled_runs_every_car_flat_out(tmp_path: Path) -> None:
    rs = grid(generated_sessions(), tmp_path)
    delivered, power = uncontrolled(rs)
    np.testing.assert_allclose(delivered, rs.requested_kwh)
    assert power.sum() * rs.period_h == pytest.approx(rs.requested_kwh.sum())
    assert power.max() <= len(rs) * rs.max_kw + 1e-9
    assert uncontrolled_peak_kw(rs) == pytest.approx(power.max())


@pytest.mark.parametrize(("fraction", "seed"), [(0.15, 3), (0.25, 4)])
def test_online_policies_stay_under_the_cap_and_below_the_optima(tmp_path: Path, fraction: float, seed: int) -> None:
    rs = grid(generated_sessions(n=24, seed=seed), tmp_path)
    cap = fraction * uncontrolled_peak_kw(rs)
    best_energy = score(rs, "oe", *offline_optimum_energy(rs, cap), cap)
    d, p, note = offline_optimum_sessions(rs, cap)
    best_served = score(rs, "os", d, p, cap)
    assert note == ""
    assert best_energy.violations == best_served.violations == 0
    assert best_served.energy_share <= best_energy.energy_share + 1e-6
    assert best_served.sessions_served >= best_energy.sessions_served
    rows = {}
    for policy in ONLINE:
        delivered, power = simulate(rs, cap, policy)
        row = score(rs, policy, delivered, power, cap)
        assert power.max() <= cap * (1 + 1e-9)
        assert row.violations == 0
        assert (delivered <= rs.requested_kwh + 1e-9).all()
        assert row.energy_share <= best_energy.energy_share + 1e-6, policy
        assert row.sessions_served <= best_served.sessions_served, policy
        rows[policy] = row
    assert uncontrolled_peak_kw(rs) > cap
    # The cap binds: somebody is short, and the deadline-aware policies beat sharing equally.
    assert best_energy.energy_share < 1.0
    assert rows["mpc"].energy_share >= rows["equal"].energy_share


def test_with_a_j1772_minimum_the_replay_stays_under_the_cap(tmp_path: Path) -> None:
    rs = grid(generated_sessions(n=12, days=1), tmp_path)
    cap = 0.3 * uncontrolled_peak_kw(rs)
    for policy in ("llf", "mpc"):
        delivered, power = simulate(rs, cap, policy, min_a=6.0)
        assert power.max() <= cap * (1 + 1e-9)
        assert delivered.sum() > 0


def test_real_caltech_days_match_acn_conventions(caltech_csv: Path) -> None:
    df = read_sessions(caltech_csv)
    rs = prepare(df, tz=TZ, start=pd.Timestamp("2021-08-02", tz=TZ), end=pd.Timestamp("2021-08-04", tz=TZ))
    local = df["connected"].dt.tz_convert(TZ)
    in_days = (local >= pd.Timestamp("2021-08-02", tz=TZ)) & (local < pd.Timestamp("2021-08-04", tz=TZ))
    assert len(rs) == int((in_days & (df["station_id"] != "2-39-81-4550")).sum()) > 20
    cap = 0.3 * uncontrolled_peak_kw(rs)
    best = score(rs, "oe", *offline_optimum_energy(rs, cap), cap)
    for policy in ("llf", "mpc"):
        row = score(rs, policy, *simulate(rs, cap, policy), cap)
        assert row.violations == 0
        assert row.energy_share <= best.energy_share + 1e-6


@pytest.fixture(scope="session")
def caltech_csv(shared_data: Path) -> Path:
    return shared_data / "ev-sessions" / "acn_caltech_sessions.csv"


def test_json_and_csv_forms_read_the_same(shared_data: Path, caltech_csv: Path) -> None:
    from_csv = read_sessions(caltech_csv)
    from_json = read_sessions(shared_data / "ev-sessions" / "acndata_caltech_2020-12_to_2021-09.json")
    assert len(from_csv) == len(from_json) == 3235
    cols = ["session_id", "station_id", "connected", "disconnected", "kwh_delivered", "id_tag"]
    pd.testing.assert_frame_equal(from_csv[cols], from_json[cols], check_dtype=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sessionID,stationID\nx,y\n", "missing column"),
        (
            "sessionID,stationID,connectionTime_utc,disconnectTime_utc,kWhDelivered\n"
            "a,x,2021-08-02T10:00:00Z,2021-08-02T12:00:00Z,abc\n",
            "kwh_delivered of row 1 is not a number",
        ),
        (
            "sessionID,stationID,connectionTime_utc,disconnectTime_utc,kWhDelivered\n"
            "a,x,2021-08-02T10:00:00Z,2021-08-02T12:00:00Z,3\nb,x,yesterday,2021-08-02T12:00:00Z,3\n",
            "connected of row 2 is not a date",
        ),
        (
            "sessionID,stationID,connectionTime_utc,disconnectTime_utc,kWhDelivered\n"
            "a,x,2021-08-02T10:00:00Z,2021-08-02T09:00:00Z,3\n",
            "disconnects before it connects",
        ),
    ],
)
def test_bad_csv_names_what_and_where(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(SessionFileError, match=message):
        read_sessions(path)


def test_bad_json_names_the_item(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"_items": [{"sessionID": "a", "stationID": "x"}]}))
    with pytest.raises(SessionFileError, match=r"_items\[0\] lacks connectionTime"):
        read_sessions(path)
    path.write_text("{not json")
    with pytest.raises(SessionFileError, match="cannot read as JSON"):
        read_sessions(path)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_all_policies_as_json(capsys: pytest.CaptureFixture[str], sessions_csv: Path) -> None:
    code, out, _ = run_cli(capsys, "--sessions", str(sessions_csv), "--cap-fraction", "0.3", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["policy"] for r in rows] == [
        *ONLINE,
        "uncontrolled",
        "offline-optimum-energy",
        "offline-optimum-sessions",
    ]
    for r in rows:
        assert set(r) == {"policy", "energy_share", "sessions_served", "sessions", "violations"}
        assert 0.0 <= r["energy_share"] <= 1.0
        assert r["sessions"] == 24
    by = {r["policy"]: r for r in rows}
    assert by["uncontrolled"]["energy_share"] == 1.0 and by["uncontrolled"]["violations"] > 0
    for policy in ONLINE:
        assert by[policy]["violations"] == 0
        assert by[policy]["energy_share"] <= by["offline-optimum-energy"]["energy_share"] + 1e-6
        assert by[policy]["sessions_served"] <= by["offline-optimum-sessions"]["sessions_served"]


def test_cli_table_flags_and_window(capsys: pytest.CaptureFixture[str], sessions_csv: Path) -> None:
    code, out, _ = run_cli(
        capsys,
        "--sessions",
        str(sessions_csv),
        "--cap-kw",
        "20",
        "--policy",
        "edf",
        "--period-min",
        "15",
        "--from",
        "2021-08-02",
        "--to",
        "2021-08-02",
        "--estimated-departure",
    )
    assert code == 0
    assert "15-min periods" in out and "cap 20.00 kW" in out and "per-id-tag estimate" in out
    lines = [line.split() for line in out.splitlines() if line.startswith(("edf", "uncontrolled"))]
    assert [line[0] for line in lines] == ["edf", "uncontrolled"]
    one_day = generated_sessions(n=24)
    local = pd.to_datetime(one_day["connectionTime_utc"], utc=True).dt.tz_convert(TZ)
    assert lines[0][2].endswith(f"/{int((local.dt.day == 2).sum())}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cap-kw", "10", "--from", "2030-01-01"], "no sessions connected in the selected dates"),
        (["--cap-kw", "10", "--from", "2021-08-03", "--to", "2021-08-01"], "is not after --from"),
        (["--cap-kw", "10", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_cli_bad_selection_exits_2(
    capsys: pytest.CaptureFixture[str], sessions_csv: Path, argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, "--sessions", str(sessions_csv), *argv)
    assert code == 2 and out == ""
    assert message in err


def test_cli_bad_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    code, _, err = run_cli(capsys, "--sessions", str(bad), "--cap-kw", "10")
    assert code == 2
    assert "bad.csv: missing column(s) sessionID" in err
    code, _, err = run_cli(capsys, "--sessions", str(tmp_path / "nope.json"), "--cap-kw", "10")
    assert code == 2 and "no such sessions file" in err


def test_cli_refuses_bad_flags(capsys: pytest.CaptureFixture[str], sessions_csv: Path) -> None:
    for argv in (
        ["--cap-fraction", "1.5"],
        ["--cap-kw", "-3"],
        ["--cap-kw", "10", "--cap-fraction", "0.3"],
        ["--cap-kw", "10", "--policy", "fastest"],
        ["--cap-kw", "10", "--from", "someday"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(["replay", "--sessions", str(sessions_csv), *argv])
        assert exc.value.code == 2
    capsys.readouterr()


def test_an_estimated_departure_is_what_the_policy_sees_not_when_the_car_leaves(tmp_path: Path) -> None:
    df = generated_sessions(n=10)
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    sessions = read_sessions(path)
    told = sessions["connected"] + pd.Timedelta(hours=2)
    rs = prepare(sessions, tz=TZ, estimated_departure=told)
    real = prepare(sessions, tz=TZ)
    np.testing.assert_array_equal(rs.departure, real.departure)
    np.testing.assert_array_equal(rs.seen_departure - rs.arrival, np.full(10, 24))  # 2 h = 24 periods after arrival
    assert (real.seen_departure == real.departure).all()
