"""The password gate bounds what an unauthenticated peer can make the central system hash."""

from __future__ import annotations

import asyncio
import base64

from controller.password_gate import PasswordGate, Verdict
from evsite.clock import ManualClock
from evsite.passwords import hash_password

HASH = hash_password("right", iterations=2000)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_a_parallel_burst_from_one_address_costs_one_hash(manual_clock: ManualClock) -> None:
    gate = PasswordGate(manual_clock)
    burst = await asyncio.gather(*(gate.check("CP", HASH, _basic("CP", f"w{i}"), "10.9.9.9") for i in range(200)))
    assert burst.count(Verdict.BAD) == 1 and burst.count(Verdict.BACKOFF) == 199
    assert gate.hashes_run == 1
    # The real charger from its own address is not locked out by that.
    assert await gate.check("CP", HASH, _basic("CP", "right"), "10.0.0.1") is Verdict.OK
    assert gate.hashes_run == 2
    gate.close()


async def test_back_off_doubles_per_failure_and_expires(manual_clock: ManualClock) -> None:
    gate = PasswordGate(manual_clock, backoff_base_s=1.0, backoff_max_s=4.0)
    addr = "10.9.9.9"
    assert await gate.check("CP", HASH, _basic("CP", "w1"), addr) is Verdict.BAD
    assert await gate.check("CP", HASH, _basic("CP", "w2"), addr) is Verdict.BACKOFF
    assert gate.retry_after_s("CP", addr) == 1
    await manual_clock.advance(1.01)
    assert await gate.check("CP", HASH, _basic("CP", "w2"), addr) is Verdict.BAD  # second failure: 2 s
    await manual_clock.advance(1.01)
    assert await gate.check("CP", HASH, _basic("CP", "w3"), addr) is Verdict.BACKOFF
    await manual_clock.advance(1.0)
    assert await gate.check("CP", HASH, _basic("CP", "right"), addr) is Verdict.OK  # success resets it
    assert gate.hashes_run == 3
    gate.close()


async def test_negative_and_verified_caches_answer_without_hashing(manual_clock: ManualClock) -> None:
    gate = PasswordGate(manual_clock, backoff_max_s=1.0, negative_ttl_s=60.0)
    assert await gate.check("CP", HASH, _basic("CP", "same-wrong"), "10.1.1.1") is Verdict.BAD
    await manual_clock.advance(2)  # past the back-off of any address
    for addr in ("10.1.1.2", "10.1.1.3"):
        assert await gate.check("CP", HASH, _basic("CP", "same-wrong"), addr) is Verdict.BAD
    assert gate.hashes_run == 1  # the same wrong password was not hashed again
    assert await gate.check("CP", HASH, _basic("CP", "right"), "10.1.1.4") is Verdict.OK
    assert await gate.check("CP", HASH, _basic("CP", "right"), "10.1.1.4") is Verdict.OK
    assert await gate.check("CP", HASH, _basic("CP", "other-wrong"), "10.1.1.5") is Verdict.BAD
    assert gate.hashes_run == 2  # once verified, right and wrong are both told apart by the cached digest
    gate.close()


async def test_queue_cap_answers_busy(manual_clock: ManualClock) -> None:
    gate = PasswordGate(manual_clock, workers=1, max_waiting=3)
    results = await asyncio.gather(*(gate.check(f"CP{i}", HASH, _basic(f"CP{i}", "right"), "a") for i in range(8)))
    assert results.count(Verdict.BUSY) >= 1 and results.count(Verdict.OK) >= 3
    gate.close()


async def test_malformed_or_foreign_credentials_never_hash(manual_clock: ManualClock) -> None:
    gate = PasswordGate(manual_clock)
    for header in (
        None,
        "Bearer x",
        "Basic !!!",
        _basic("OTHER", "right"),
        "Basic " + base64.b64encode(b"CP").decode(),
    ):
        assert await gate.check("CP", HASH, header, "a") is Verdict.BAD
    assert await gate.check("CP", None, _basic("CP", "right"), "a") is Verdict.BAD
    assert gate.hashes_run == 0
    gate.close()
