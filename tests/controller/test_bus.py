from evsite.bus import EventBus


async def test_fan_out_prefix_and_last_value():
    bus = EventBus(queue_size=2)
    exact = bus.subscribe("meter/site")
    prefix = bus.subscribe("ocpp/#")
    bus.publish("meter/site", 1)
    bus.publish("ocpp/status", "A")
    bus.publish("ocpp/boot", "B")
    assert await exact.get() == ("meter/site", 1)
    assert exact.get_nowait() is None
    assert [await prefix.get(), await prefix.get()] == [("ocpp/status", "A"), ("ocpp/boot", "B")]
    assert bus.last("meter/site") == 1


async def test_slow_subscriber_drops_oldest_without_blocking():
    bus = EventBus(queue_size=2)
    sub = bus.subscribe("t")
    for i in range(5):
        bus.publish("t", i)
    assert sub.dropped == 3
    assert [(await sub.get())[1], (await sub.get())[1]] == [3, 4]
