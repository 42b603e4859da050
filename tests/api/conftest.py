"""A running site with the API on 127.0.0.1 (ports 0) and an HTTP client per role.

The site is a real ``SiteRuntime`` (central system + API server on one loop); requests go over a real socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomlkit

from controller.api.auth import token_digest
from controller.runtime import SiteRuntime
from evsite.clock import ManualClock
from evsite.config import parse_config

TOKENS = {"read": "read-token-0123456789", "operator": "operator-token-0123456789"}


def api_config(db_url: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "call_timeout_s": 2},
        "store": {"url": db_url},
        "service": {"rating_a": 400, "voltage_v": 208, "phases": 3, "continuous_load_factor": 0.8},
        "chargers": [{"id": "CP1", "connectors": 2}, {"id": "CP2"}],
        "id_tags": [{"id_tag": "TAG-OK"}],
        # The API's own view of the site (LiveSite); tests that want load management's turn it on.
        "site": {"enabled": False},
        "api": {
            "enabled": True,
            "port": 0,
            "tokens": [
                {"name": "reader", "sha256": token_digest(TOKENS["read"]), "role": "read"},
                {"name": "alice", "sha256": token_digest(TOKENS["operator"]), "role": "operator"},
            ],
        },
    }
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return data


@dataclass
class Site:
    runtime: SiteRuntime
    clock: ManualClock
    url: str

    @property
    def csms(self) -> Any:
        return self.runtime.csms

    def client(self, role: str | None = "operator", headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        sent = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
        return httpx.AsyncClient(base_url=self.url, headers={**sent, **(headers or {})}, timeout=10)


SiteFactory = Callable[..., Any]


@pytest.fixture
async def make_site(tmp_path: Path, manual_clock: ManualClock) -> AsyncIterator[SiteFactory]:
    started: list[SiteRuntime] = []

    async def factory(**overrides: Any) -> Site:
        data = api_config(f"sqlite:///{tmp_path / 'evsite.db'}", **overrides)
        config_path = tmp_path / "config.toml"
        config_path.write_text(tomlkit.dumps(data), encoding="utf-8")
        runtime = SiteRuntime(parse_config(data), manual_clock, config_path=config_path)
        await runtime.start()
        started.append(runtime)
        return Site(runtime, manual_clock, runtime.api.url)

    yield factory
    for runtime in started:
        await runtime.stop()


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site()
