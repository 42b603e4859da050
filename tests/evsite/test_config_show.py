"""`evsite config show --key SECTION` prints every section, including those with unset (None) fields."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from evsite.cli import main
from evsite.config import Config


@pytest.mark.parametrize("section", list(Config.model_fields))
def test_every_section_shows_as_toml_without_a_traceback(
    section: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[chargers]]\nid = "CP1"\n[[id_tags]]\nid_tag = "T1"\n')
    assert main(["config", "show", str(cfg), "--key", section]) == 0
    out = capsys.readouterr().out
    expected = Config.model_validate(tomllib.loads(cfg.read_text())).model_dump(mode="json")[section]
    if isinstance(expected, dict):
        shown = tomllib.loads(out)
        assert shown == {k: v for k, v in expected.items() if v is not None}
        unset = [k for k, v in expected.items() if v is None]
        assert all(k in out for k in unset)
    else:  # a list section ([[chargers]]) prints as JSON
        assert out.strip().startswith("[")


def test_service_lists_its_unset_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(tmp_path / "none.toml"), "--key", "service"]) == 0
    out = capsys.readouterr().out
    assert "rating_a = 400.0" in out and "# unset (no value): evse_rating_kw" in out
