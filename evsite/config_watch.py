"""Live reload of ``config.toml`` while evsite runs.

Why: operators edit the config of a running site (a new charger, a changed service rating). A good edit
must take effect without a restart; a bad one must be rejected loudly while the running config stays.

``ConfigWatcher.check()`` is the pure-ish step (stat, read, validate, compare) and ``run()`` polls it on the
injected clock. Accepted changes are published on the bus topic ``config/changed`` as a ``ConfigChange``
(old, new, and the top-level sections that differ); rejections go to ``config/rejected`` with the message.
Polling (not inotify) keeps it portable and works on the editors that replace files by rename.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config, ConfigError, parse_config_text
from evsite.log import log_event

log = logging.getLogger("evsite.config")

TOPIC_CHANGED = "config/changed"
TOPIC_REJECTED = "config/rejected"


@dataclass(frozen=True)
class ConfigChange:
    old: Config
    new: Config
    sections: tuple[str, ...]


@dataclass(frozen=True)
class ConfigRejected:
    path: str
    message: str


def changed_sections(old: Config, new: Config) -> tuple[str, ...]:
    """Top-level config sections whose values differ (what a component must re-read)."""
    a, b = old.model_dump(), new.model_dump()
    return tuple(k for k in type(old).model_fields if a.get(k) != b.get(k))


class ConfigWatcher:
    """Holds the running config and swaps it only for a valid, different one."""

    def __init__(
        self,
        path: str | Path,
        current: Config,
        bus: EventBus,
        clock: Clock,
        interval_s: float = 2.0,
        transform: Callable[[Config], Config] | None = None,
    ):
        """``transform`` re-applies what the command line overrode (``--port``...) to every reloaded config."""
        self.path = Path(path)
        self.transform = transform
        self.current = current
        self.bus = bus
        self.clock = clock
        self.interval_s = interval_s
        self._last_text = self._read()

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except OSError:
            return None

    def check(self) -> ConfigChange | ConfigRejected | None:
        """Look at the file once; apply, reject or ignore. Returns what happened (None: nothing new)."""
        text = self._read()
        if text is None or text == self._last_text:
            return None
        self._last_text = text
        try:
            new = parse_config_text(text, str(self.path))
            if self.transform is not None:
                new = self.transform(new)
        except ConfigError as err:
            rejected = ConfigRejected(str(self.path), str(err))
            log_event(log, "config_rejected", logging.ERROR, path=str(self.path), error=str(err))
            self.bus.publish(TOPIC_REJECTED, rejected)
            return rejected
        sections = changed_sections(self.current, new)
        if not sections:
            return None
        change = ConfigChange(self.current, new, sections)
        self.current = new
        log_event(log, "config_reloaded", path=str(self.path), sections=",".join(sections))
        self.bus.publish(TOPIC_CHANGED, change)
        return change

    async def run(self) -> None:
        """Poll forever (cancel the task to stop)."""
        while True:
            await self.clock.sleep(self.interval_s)
            self.check()
