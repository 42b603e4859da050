"""Fixtures shared by the simulator tests that run against our own central system."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.csms import CentralSystem
from controller.store import Store
from evsite.bus import EventBus
from evsite.clock import ManualClock
from evsite.config import parse_config


@pytest.fixture
async def central(tmp_path: Path, manual_clock: ManualClock) -> AsyncIterator[CentralSystem]:
    """``evsite``'s central system on 127.0.0.1, port 0, its own SQLite file; knows the simulator's SIM-TAG."""
    config = parse_config(
        {
            "server": {"host": "127.0.0.1", "port": 0, "allow_unknown_chargers": True, "call_timeout_s": 5},
            "store": {"url": f"sqlite:///{tmp_path / 'evsite.db'}"},
            "id_tags": [{"id_tag": "SIM-TAG"}],
        }
    )
    store = Store.open(config.store.url)
    csms = CentralSystem(config, store, manual_clock, EventBus(), validate_responses=True)
    await csms.start()
    try:
        yield csms
    finally:
        await csms.stop()
        store.close()
