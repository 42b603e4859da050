"""HTTP Basic password checks that an unauthenticated peer cannot turn into unbounded CPU work.

Why: one PBKDF2 verification costs ~136 ms of hashing on a small site controller. Without limits, 400
wrong-password handshakes for one known id keep every real charger waiting behind them, and a cold restart
with hundreds of chargers logging in at once queues them all on an unbounded thread pool shared with
everything else. So, in the order a request meets them:

1. **Verified cache**: once a password is verified against a stored hash, its SHA-256 digest is kept; a
   matching password is accepted without hashing and *any other* password for that hash is refused without
   hashing (it cannot also be right). After the real charger's first login a flood costs nothing.
2. **Negative cache**: the same wrong password for the same id is refused for ``negative_ttl_s`` without
   hashing again.
3. **Back-off per (id, address)**: after a failure from an address, that address may not try that id again
   for 1, 2, 4 … up to ``backoff_max_s`` seconds (answered 429 with ``Retry-After``). Keyed on the pair, so an
   attacker elsewhere cannot lock the real charger out; one check per (id, address) at a time, so a burst
   of parallel handshakes costs one verification, not hundreds.
4. **A cap on concurrent verifications** (``workers``, own threads, FIFO) and on the queue behind them
   (``max_waiting``, answered 503): a cold restart of hundreds of chargers is served in arrival order, each
   waiting at most its queue position times one hash divided by ``workers``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum

from evsite.clock import Clock
from evsite.log import log_event
from evsite.passwords import verify_password

log = logging.getLogger("controller.password_gate")


class Verdict(Enum):
    OK = "ok"
    BAD = "bad"  # wrong or missing credentials (401)
    BACKOFF = "backoff"  # this address failed for this id recently (429)
    BUSY = "busy"  # too many verifications queued (503)


@dataclass
class _Failures:
    count: int
    until: float  # clock.monotonic() before which this (id, address) is refused


class PasswordGate:
    """Decides HTTP Basic logins; ``check`` is the only entry point."""

    #: Entries kept in the negative cache and the back-off table before expired ones are swept.
    _SWEEP_AT = 10_000

    def __init__(
        self,
        clock: Clock,
        workers: int = 2,
        max_waiting: int = 2000,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        negative_ttl_s: float = 60.0,
    ) -> None:
        self.clock = clock
        self.workers = workers
        self.max_waiting = max_waiting
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.negative_ttl_s = negative_ttl_s
        self._verified: dict[tuple[str, str], bytes] = {}
        self._wrong: dict[tuple[str, str, bytes], float] = {}
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._slots = asyncio.Semaphore(workers)
        self._waiting = 0
        self._executor: ThreadPoolExecutor | None = None
        self.hashes_run = 0

    def retry_after_s(self, cp_id: str, address: str) -> int:
        """Whole seconds until (id, address) may try again (for the ``Retry-After`` header)."""
        f = self._failures.get((cp_id, address))
        return max(1, int((f.until - self.clock.monotonic()) + 0.999)) if f else 1

    async def check(self, cp_id: str, password_hash: str | None, header: str | None, address: str) -> Verdict:
        """Is ``header`` (an ``Authorization`` value) the right password for ``cp_id`` from ``address``?"""
        password = _basic_password(cp_id, header)
        if password is None or not password_hash:
            return Verdict.BAD
        digest = hashlib.sha256(password.encode()).digest()
        known_good = self._verified.get((cp_id, password_hash))
        if known_good is not None:
            return Verdict.OK if hmac.compare_digest(known_good, digest) else self._failed(cp_id, address)
        now = self.clock.monotonic()
        wrong_key = (cp_id, password_hash, digest)
        if self._wrong.get(wrong_key, 0.0) > now:
            return self._failed(cp_id, address)
        pair = (cp_id, address)
        failures = self._failures.get(pair)
        if (failures is not None and failures.until > now) or pair in self._in_flight:
            return Verdict.BACKOFF
        if self._waiting >= self.max_waiting:
            return Verdict.BUSY
        self._in_flight.add(pair)
        self._waiting += 1
        try:
            async with self._slots:
                self._waiting -= 1
                ok = await asyncio.get_running_loop().run_in_executor(
                    self._pool(), verify_password, password, password_hash
                )
                self.hashes_run += 1
        finally:
            self._in_flight.discard(pair)
        log_event(log, "password_verified", logging.DEBUG, cp_id=cp_id, address=address, ok=ok)
        if ok:
            self._verified[(cp_id, password_hash)] = digest
            self._failures.pop(pair, None)
            return Verdict.OK
        self._sweep(now)
        self._wrong[wrong_key] = self.clock.monotonic() + self.negative_ttl_s
        return self._failed(cp_id, address)

    def _failed(self, cp_id: str, address: str) -> Verdict:
        pair = (cp_id, address)
        f = self._failures.get(pair)
        count = 1 if f is None else f.count + 1
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (count - 1))
        self._failures[pair] = _Failures(count, self.clock.monotonic() + delay)
        return Verdict.BAD

    def _sweep(self, now: float) -> None:
        """Forget expired negative-cache and back-off entries once the tables grow (bounded memory)."""
        if len(self._wrong) > self._SWEEP_AT:
            self._wrong = {k: t for k, t in self._wrong.items() if t > now}
        if len(self._failures) > self._SWEEP_AT:
            horizon = now - self.backoff_max_s
            self._failures = {k: f for k, f in self._failures.items() if f.until > horizon}

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="evsite-auth")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _basic_password(cp_id: str, header: str | None) -> str | None:
    """The password of an HTTP Basic header whose user name is ``cp_id``; None for anything else."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password if sep and user == cp_id else None
