"""A charge point's local authorisation: the Local Authorization List and the Authorization Cache (OCPP 1.6 §3.5).

Why a module of its own: the rules for a driver's tag while the central system cannot be asked are pure
decisions over two tables and a few configuration keys, tested without a socket. The list is what the central
system sent (SendLocalList, versioned); the cache is what it answered lately (Authorize, Start/StopTransaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TagInfo:
    """An ``IdTagInfo`` as kept locally (status, optional expiry and parent tag)."""

    status: str
    expiry: datetime | None = None
    parent_id_tag: str | None = None

    @classmethod
    def from_wire(cls, info: dict[str, Any]) -> TagInfo:
        """From a camelCase or snake_case ``idTagInfo``; an unreadable expiry counts as none."""
        expiry = info.get("expiryDate", info.get("expiry_date"))
        try:
            when = datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None
        except (AttributeError, ValueError):
            when = None
        return cls(info["status"], when, info.get("parentIdTag", info.get("parent_id_tag")))

    def accepted_at(self, now: datetime) -> bool:
        return self.status == "Accepted" and (self.expiry is None or self.expiry > now)


class ListUpdateError(Exception):
    """A SendLocalList that cannot be applied; ``status`` is the UpdateStatus to answer."""

    def __init__(self, status: str, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass
class LocalAuth:
    """The local list (with its version) and the cache. ``max_list`` is LocalAuthListMaxLength."""

    max_list: int = 1000
    version: int = 0
    entries: dict[str, TagInfo] = field(default_factory=dict)
    cache: dict[str, TagInfo] = field(default_factory=dict)

    def update(self, version: int, update_type: str, items: list[dict[str, Any]]) -> None:
        """Apply a SendLocalList (items camelCase as sent); raise ``ListUpdateError`` when it cannot be."""
        if update_type == "Differential" and version <= self.version:
            raise ListUpdateError("VersionMismatch", f"differential version {version} <= current {self.version}")
        new = {} if update_type == "Full" else dict(self.entries)
        for item in items:
            info = item.get("idTagInfo")
            if info is None:  # in a differential update: remove the tag
                new.pop(item["idTag"], None)
            else:
                new[item["idTag"]] = TagInfo.from_wire(info)
        if len(new) > self.max_list:
            raise ListUpdateError("Failed", f"{len(new)} entries exceed LocalAuthListMaxLength {self.max_list}")
        self.entries, self.version = new, version

    def remember(self, id_tag: str, info: dict[str, Any]) -> None:
        """Keep the central system's latest answer about a tag (the Authorization Cache)."""
        self.cache[id_tag] = TagInfo.from_wire(info)

    def offline_decision(
        self, id_tag: str, now: datetime, *, list_enabled: bool, cache_enabled: bool, allow_unknown: bool
    ) -> tuple[bool, str]:
        """May a transaction start for ``id_tag`` without asking the central system? And why.

        With LocalAuthorizeOffline: the list first, then the cache; a tag known there with any other status than
        a valid Accepted is refused. A tag found in neither is unknown: AllowOfflineTxForUnknownId decides.
        """
        for enabled, table, where in ((list_enabled, self.entries, "local_list"), (cache_enabled, self.cache, "cache")):
            info = table.get(id_tag) if enabled else None
            if info is not None:
                return info.accepted_at(now), f"{where}:{info.status}"
        return allow_unknown, "unknown_tag"
