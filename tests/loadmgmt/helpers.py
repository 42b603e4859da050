"""One small site for the load manager's state tests: a 100 A / 400 V service and one two-connector charger."""

from __future__ import annotations

from pathlib import Path

from controller.csms import CentralSystem
from controller.loadmgmt.manager import LoadManager
from controller.store import Store
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config, parse_config_text


def site_config(tmp_path: Path, site: str = "", meter: str = "") -> Config:
    """The site with extra ``[site]`` / ``[meter]`` lines."""
    return parse_config_text(f"""
[store]
url = "sqlite:///{tmp_path / "lm.db"}"
[service]
rating_a = 100
voltage_v = 400
[meter]
{meter}
[site]
{site}
[[chargers]]
id = "CP1"
connectors = 2
max_current_a = 32
""")


def load_manager(cfg: Config, clock: Clock) -> tuple[LoadManager, Store]:
    """A load manager over a real (not listening) central system and store, as right after a (re)start."""
    store = Store.open(cfg.store.url)
    bus = EventBus()
    return LoadManager(cfg, CentralSystem(cfg, store, clock, bus), bus, clock), store
