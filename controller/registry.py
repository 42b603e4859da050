"""The registry of charge points: which ids are known, what we know of each, and which are connected now.

Why its own module: admission (who may connect), the read loops (who is connected), the offline sweep and
``send`` all look chargers up; one object owns those tables so a replaced connection, a removed charger or a
charger going silent is handled in one place.
"""

from __future__ import annotations

from collections.abc import KeysView
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from controller.errors import ChargePointNotConnected


class Session(Protocol):
    """What the registry needs of a connected charge point's session."""

    def connection_lost(self) -> None: ...


@dataclass
class KnownCharger:
    """A charge point the central system will admit (from the config, the store, or auto-registered)."""

    password_hash: str | None
    auto_registered: bool
    firmware_version: str | None = None
    capabilities: dict[str, Any] | None = None
    #: Listed in ``[[chargers]]`` (removing it from the config then refuses it).
    from_config: bool = False
    #: Offline-sweep state: last time it spoke (the injected clock's ``now``) and whether it counts as online.
    last_heard: datetime | None = None
    online: bool = False


class ChargerRegistry:
    """Known chargers (``known``) and live sessions (``sessions``), keyed by charge point id."""

    def __init__(self) -> None:
        self.known: dict[str, KnownCharger] = {}
        self.sessions: dict[str, Any] = {}
        #: Ids removed from the config: refused even when unknown chargers are allowed (removal is explicit).
        self.removed: set[str] = set()

    @property
    def connected(self) -> KeysView[str]:
        """A live read-only view (``in``, ``len``, iteration, set operations) that costs nothing to take:
        load management asks once per connector per cycle, and a copy of 10,000 ids each time was quadratic.
        Take ``set(...)`` of it to keep a snapshot across an ``await``."""
        return self.sessions.keys()

    def session(self, cp_id: str) -> Any:
        try:
            return self.sessions[cp_id]
        except KeyError:
            raise ChargePointNotConnected(cp_id) from None

    def attach(self, cp_id: str, session: Any) -> Any | None:
        """Make ``session`` the charger's live one; returns the session it replaces (already marked lost)."""
        old = self.sessions.get(cp_id)
        self.sessions[cp_id] = session
        if old is not None:
            old.connection_lost()
        return old

    def detach(self, cp_id: str, session: Any) -> bool:
        """Forget ``session`` if it is still the live one; True when it was (the charger is now disconnected)."""
        session.connection_lost()
        if self.sessions.get(cp_id) is session:
            del self.sessions[cp_id]
            return True
        return False
