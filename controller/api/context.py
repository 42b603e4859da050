"""Everything a request handler may use, in one object handed to ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.api.site_state import LiveSite, SiteStateSource
from controller.csms import CentralSystem
from controller.store import Store
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config


@dataclass
class ApiContext:
    """The running site as the API sees it. ``config`` is a getter: live reloads (tokens, chargers) apply."""

    csms: CentralSystem
    store: Store
    bus: EventBus
    clock: Clock
    config: Callable[[], Config]
    live: LiveSite
    config_path: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def source(self) -> SiteStateSource:
        """Load management when it runs, else the bus-following fallback."""
        return self.live.source or self.live

    def config_file(self) -> str:
        """How to name the file that owns config ids in an error message."""
        return str(self.config_path) if self.config_path else "the config file"

    def config_charger_ids(self) -> set[str]:
        return {c.id for c in self.config().chargers}

    def config_tag_ids(self) -> set[str]:
        return {t.id_tag for t in self.config().id_tags}
