"""The shared MQTT subscription loop: backoff on the injected clock, payloads handed to ``handle``."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid

import aiomqtt
import pytest

from controller.mqtt_subscription import subscribe_forever
from tests.waiting import eventually


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_broker_backs_off_exponentially(manual_clock) -> None:
    disconnects: list[float] = []
    subscribed = asyncio.Event()
    task = asyncio.create_task(
        subscribe_forever(
            host="127.0.0.1", port=_closed_port(), topic="t", clock=manual_clock, handle=lambda p: None,
            subscribed=subscribed, on_disconnect=lambda: disconnects.append(manual_clock.monotonic()),
            logger=logging.getLogger("test"), event_prefix="test",
        )
    )  # fmt: skip
    try:
        await eventually(lambda: disconnects, what="the first refused connection")
        for wait in (1.0, 2.0, 4.0):
            n = len(disconnects)
            await manual_clock.advance(wait - 0.001)
            assert len(disconnects) == n  # still waiting: the backoff is this long
            await manual_clock.advance(0.001)
            await eventually(lambda n=n: len(disconnects) > n, what=f"the retry after {wait} s")
        assert disconnects == pytest.approx([0.0, 1.0, 3.0, 7.0])
        assert not subscribed.is_set()
    finally:
        task.cancel()


async def test_payloads_reach_handle_from_the_real_broker(mqtt_broker, manual_clock) -> None:
    host, port = mqtt_broker
    topic = f"evsite-test/{uuid.uuid4().hex[:8]}"
    got: list[bytes] = []
    subscribed = asyncio.Event()
    task = asyncio.create_task(
        subscribe_forever(
            host=host, port=port, topic=topic, clock=manual_clock, handle=got.append, subscribed=subscribed,
            on_disconnect=lambda: None, logger=logging.getLogger("test"), event_prefix="test",
        )
    )  # fmt: skip
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        async with aiomqtt.Client(host, port) as client:
            await client.publish(topic, b"one")
            await client.publish(topic, b"two")
        await eventually(lambda: len(got) == 2, what="both payloads")
        assert got == [b"one", b"two"]
    finally:
        task.cancel()
