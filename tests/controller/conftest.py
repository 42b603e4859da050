"""Fixtures for the central-system tests: a running ``CentralSystem`` on 127.0.0.1, port 0, own SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from controller.csms import CentralSystem
from controller.store import Store
from evsite.bus import EventBus
from evsite.clock import ManualClock
from evsite.config import Config, parse_config
from evsite.passwords import hash_password

# Cheap hashes keep the auth tests fast; production uses the default iteration count.
PASSWORDS = {"CP-AUTH": "s3cret-pass"}
PASSWORD_HASHES = {k: hash_password(v, iterations=1000) for k, v in PASSWORDS.items()}


def site_config(db_url: str, **server: Any) -> Config:
    return parse_config(
        {
            "server": {"host": "127.0.0.1", "port": 0, "call_timeout_s": 2, **server},
            "store": {"url": db_url},
            "chargers": [
                {"id": "CP1", "connectors": 2},
                {"id": "CP2"},
                {"id": "CP-AUTH", "password_hash": PASSWORD_HASHES["CP-AUTH"]},
            ],
            "id_tags": [
                {"id_tag": "TAG-OK"},
                {"id_tag": "TAG-BLOCKED", "status": "Blocked"},
                {"id_tag": "TAG-OLD", "expiry_date": "2025-01-01T00:00:00Z"},
            ],
        }
    )


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'evsite.db'}"


CsmsFactory = Callable[..., Any]


@pytest.fixture
async def make_csms(db_url: str, manual_clock: ManualClock) -> AsyncIterator[CsmsFactory]:
    """``await make_csms(**server_overrides)`` → a started CentralSystem (stopped after the test)."""
    started: list[CentralSystem] = []

    async def factory(url: str | None = None, **server: Any) -> CentralSystem:
        config = site_config(url or db_url, **server)
        store = Store.open(config.store.url)
        csms = CentralSystem(config, store, manual_clock, EventBus(), validate_responses=True)
        await csms.start()
        started.append(csms)
        return csms

    yield factory
    for csms in started:
        await csms.stop()
        csms.store.close()


@pytest.fixture
async def csms(make_csms: CsmsFactory) -> CentralSystem:
    return await make_csms()
