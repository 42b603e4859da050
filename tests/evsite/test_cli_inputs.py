"""Every command that reads an input file refuses a missing or empty one the same way: exit 2 and
``evsite COMMAND: PATH: WHAT file not found`` / ``... is empty``, before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsite.cli import main

CASES = [
    ("plan", ["plan", "--meter", "{f}", "--out", "{tmp}/out"], "meter"),
    ("regulate", ["regulate", "--signal", "{f}", "--hours", "0.01"], "signal"),
    ("simulate", ["simulate", "--meter-csv", "{f}", "--url", "ws://127.0.0.1:1/ocpp"], "meter"),
    ("simulate", ["simulate", "--fleet", "sessions", "--sessions-csv", "{f}", "--url", "ws://127.0.0.1:1/ocpp"],
     "sessions"),
]  # fmt: skip


@pytest.mark.parametrize("state", ["missing", "empty"])
@pytest.mark.parametrize(("command", "argv", "what"), CASES)
def test_missing_or_empty_input_exits_2_with_one_message_shape(
    tmp_path: Path, capsys, monkeypatch, state: str, command: str, argv: list[str], what: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.toml: defaults
    f = tmp_path / "input.csv"
    if state == "empty":
        f.write_text("")
    args = [a.format(f=f, tmp=tmp_path) for a in argv]
    assert main(args) == 2
    expected = "file not found" if state == "missing" else "file is empty"
    assert capsys.readouterr().err.strip() == f"evsite {command}: {f}: {what} {expected}"
    assert not (tmp_path / "out").exists()


def test_an_empty_meter_folder_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "meters").mkdir()
    assert main(["plan", "--meter", str(tmp_path / "meters"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"evsite plan: {tmp_path / 'meters'}: meter folder is empty"
