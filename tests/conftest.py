"""Fixtures every test area shares: the real data folder, the real PostgreSQL and Mosquitto servers, clocks.

Adapter tests use real servers (started by ``.ci/services``); when one is not reachable the test fails with
a message saying so, it never skips silently.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evsite.clock import ManualClock

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: the real meter, session, signal and tariff data (never copied into the product)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder not found at {SHARED_DATA} (expected shared/ beside the repo)")
    return SHARED_DATA


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the local server, dropped afterwards."""
    if not _listening("127.0.0.1", 5432):
        pytest.fail("PostgreSQL is not listening on 127.0.0.1:5432: run `bash .ci/services` first")
    import psycopg

    name = f"evsite_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """The local Mosquitto broker's address."""
    if not _listening(MQTT_HOST, MQTT_PORT):
        pytest.fail(f"Mosquitto is not listening on {MQTT_HOST}:{MQTT_PORT}: run `bash .ci/services` first")
    return MQTT_HOST, MQTT_PORT
