"""`evsite serve` as a real child process for reliability tests: its log goes to a file (never a pipe that
could fill up and stall the server under a flood), its URL is read from the startup line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EVSITE = [sys.executable, "-m", "evsite"]
_URL = re.compile(r"listening on (wss?://[^\s<\"]+/ocpp/)")


@dataclass
class ServeProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def events(self, name: str) -> list[dict]:
        """JSON-mode log lines whose event is ``name``."""
        return [d for d in map(json.loads, self.lines()) if d.get("event") == name]

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines())


@contextmanager
def serve_process(cfg: Path, *args: str, expect_exit: int | None = 0) -> Iterator[ServeProcess]:
    """Start `evsite serve --config cfg`, yield it once listening, SIGTERM it afterwards (unless it is gone)."""
    log = cfg.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen([*EVSITE, "serve", "--config", str(cfg), *args], stderr=out, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            m = _URL.search(log.read_text(errors="replace"))
            url = m.group(1) if m else None
            if url is None:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no startup line"
                time.sleep(0.05)
        yield ServeProcess(url, proc, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        if expect_exit is not None:
            assert code == expect_exit, log.read_text()
