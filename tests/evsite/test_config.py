import subprocess
import sys
from pathlib import Path

import pytest

from evsite.config import ConfigError, load_config, parse_config_text
from evsite.config_edit import parse_value, set_value

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid():
    cfg = load_config(REPO / "config.toml")
    assert cfg.server.port == 9000
    assert cfg.chargers[0].id == "CP001"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = 'abc'\n", "server.port: Input should be a valid integer"),
        ("[server]\nprot = 9000\n", "server.prot: unknown key"),
        ("[service]\nphases = 2\n", "service.phases"),
        ("[[chargers]]\nid = 'A'\n[[chargers]]\nid = 'A'\n", "listed twice"),
        ("[[chargers]]\nid = 'A'\nmax_current_a = -3\n", "chargers.0.max_current_a"),
        ("[server\nport = 1\n", "not valid TOML"),
        ("[server]\ntls_cert = 'a.pem'\n", "tls_cert and tls_key must be given together"),
    ],
)
def test_bad_config_names_the_key_path(text, expected):
    with pytest.raises(ConfigError) as exc:
        parse_config_text(text, "site.toml")
    assert expected in str(exc.value)
    assert str(exc.value).startswith("site.toml")


def test_set_value_keeps_comments_and_validates():
    text = "# my site\n[service]\nrating_a = 400 # main breaker\n"
    new_text, cfg = set_value(text, "service.rating_a", parse_value("600"))
    assert "# my site" in new_text and "# main breaker" in new_text
    assert cfg.service.rating_a == 600
    with pytest.raises(ConfigError, match=r"service\.rating_a"):
        set_value(text, "service.rating_a", parse_value("-1"))
    with pytest.raises(ConfigError, match="unknown key"):
        set_value(text, "service.ratng_a", parse_value("1"))


def _evsite(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evsite", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_rejects_bad_edit_and_leaves_file_unchanged(tmp_path):
    cfg = tmp_path / "config.toml"
    original = (REPO / "config.toml").read_text()
    cfg.write_text(original)
    bad = _evsite("config", "set", "server.port", "'not a port'", "--config", str(cfg), cwd=tmp_path)
    assert bad.returncode == 2
    assert "server.port" in bad.stderr and "unchanged" in bad.stderr
    assert cfg.read_text() == original
    good = _evsite("config", "set", "service.rating_a", "800", "--config", str(cfg), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "rating_a = 800" in cfg.read_text()
    assert "# evsite site configuration" in cfg.read_text()
    check = _evsite("config", "check", str(cfg), cwd=tmp_path)
    assert check.returncode == 0 and "800 A" in check.stdout


def test_cli_check_exits_nonzero_on_invalid_file(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[store]\nurl = 'mysql://x'\n")
    res = _evsite("config", "check", str(cfg), cwd=tmp_path)
    assert res.returncode == 2
    assert "store.url" in res.stderr


def test_regulation_keys_for_the_market_aggregator():
    cfg = parse_config_text(
        "[regulation]\nsoc_force_charge = 0.2\nslack_margin_s = 1800\nmin_hold_s = 600\n"
        "latency_median_s = 3\nlatency_p99_s = 20\ncommand_loss_share = 0.02\n"
    )
    rc = cfg.regulation
    assert (rc.soc_force_charge, rc.slack_margin_s, rc.min_hold_s) == (0.2, 1800, 600)
    assert (rc.latency_median_s, rc.latency_p99_s, rc.command_loss_share) == (3, 20, 0.02)
    with pytest.raises(ConfigError, match="latency_p99_s must be >= latency_median_s"):
        parse_config_text("[regulation]\nlatency_median_s = 5\nlatency_p99_s = 2\n")
    with pytest.raises(ConfigError, match="meter_interval_s"):
        parse_config_text("[regulation]\nmeter_interval_s = 2\n")
