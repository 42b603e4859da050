"""The dashboard in a real headless Chromium (Debian's package, driven by Selenium) against a real
``evsite serve`` with simulated chargers and a simulated building meter over the real MQTT broker.

Checks what an operator relies on: the page loads without console errors, the chargers appear, a meter
reading moves the chart without a reload, and the Stop button ends the transaction *at the simulated charger*
(it sends StopTransaction with reason Remote). Screenshots go to tests/artifacts/ (kept by CI as artefacts).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.api.auth import token_digest
from evsite.clock import ScaledClock
from evsite.ev_fleet import seed_fleet
from evsite.meter_reading import MeterReading
from simulators.meter import MqttMeterPublisher
from simulators.site import SimulatedSite, charger_specs

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TOKEN = "browser-operator-token-0123456789"


def wait(what: str, check: Callable[[], Any], within_s: float = 20.0) -> Any:
    """Poll ``check`` (real time) until truthy; fail naming ``what``."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


class LoopThread:
    """An asyncio loop in a thread: the simulated chargers keep running while Selenium blocks the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrapped() -> Any:
            return fn()

        return self.run(wrapped())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def serve(tmp_path: Path, mqtt_broker: tuple[str, int]) -> Iterator[dict[str, str]]:
    host, port = mqtt_broker
    topic = f"evsite/test/{uuid.uuid4().hex}/meter"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
meter_value_sample_interval_s = 1
[store]
url = "sqlite:///{tmp_path / "evsite.db"}"
# Load management runs: the service must leave the EVs room beside the 123.4 kW building reading below, and
# that one reading must stay fresh for the rest of the test (a stale meter allows no increase).
[service]
rating_a = 800
[meter]
stale_after_s = 600
# The simulated chargers' clock runs 60x faster than this server's: a live limit's validTo must outlast the
# test on their clock, or they fall back to the fail-safe (0 A here) after two real seconds.
[site]
profile_validity_s = 86400
[[chargers]]
id = "WEB0001"
connectors = 2
[[chargers]]
id = "WEB0002"
connectors = 2
[[id_tags]]
id_tag = "SIM-TAG"
[mqtt]
enabled = true
host = "{host}"
port = {port}
meter_topic = "{topic}"
[api]
enabled = true
port = 0
[[api.tokens]]
name = "browser-test"
sha256 = "{token_digest(TOKEN)}"
role = "operator"
"""
    )
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "evsite", "serve", "--config", str(cfg)], stderr=err)
    try:
        text = wait("evsite serve to start", lambda: "dashboard and API on" in log.read_text() and log.read_text())
        ws = re.search(r"listening on (ws://\S+/ocpp/)", text).group(1)  # type: ignore[union-attr]
        http = re.search(r"dashboard and API on (http://\S+/) ", text).group(1)  # type: ignore[union-attr]
        yield {"ws": ws, "http": http, "topic": topic, "mqtt_host": host, "mqtt_port": str(port)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium is not installed: run `bash .ci/browser` (Debian packages chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1400", "--no-first-run"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def severe_console_messages(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_dashboard_shows_the_site_moves_the_chart_and_stops_a_transaction(serve, browser) -> None:
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(exist_ok=True)
    loop = LoopThread()
    # Real time (load management's profiles carry real validity times), one-second steps and meter values.
    clock = ScaledClock(1.0, start=datetime.now(UTC))
    # The seeded fleet, shifted so its first EV plugs in two seconds after the start.
    fleet = seed_fleet(4, 0)
    origin = clock.now() - timedelta(seconds=float(fleet.arrival_s.min()) - 2)
    site = SimulatedSite(serve["ws"].rstrip("/"), clock, charger_specs(2, 2, prefix="WEB", meter_interval_s=1),
                         fleet, fleet_origin=origin, step_s=1.0)  # fmt: skip
    api = httpx.Client(base_url=serve["http"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    stepping = None

    def charging() -> dict[int, Any]:
        """Open transactions at the simulated chargers: {transaction id: charger}."""
        return {tx.transaction_id: cp for cp in site.chargers for tx in cp.tx.values() if tx.transaction_id}

    try:
        loop.run(site.start())
        assert loop.run(site.wait_online(15.0)) == 2
        stepping = asyncio.run_coroutine_threadsafe(site.run(hours=2), loop.loop)

        browser.get(serve["http"])
        token_box = browser.find_element(By.ID, "token")
        token_box.send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait(
            "both chargers in the table",
            lambda: (
                {"WEB0001", "WEB0002"}
                <= {r.get_attribute("data-cp") for r in browser.find_elements(By.CSS_SELECTOR, "#chargers tbody tr")}
            ),
        )
        wait("the chargers shown online", lambda: len(browser.find_elements(By.CSS_SELECTOR, "#chargers .online")) == 2)

        # A building-meter reading from the simulated meter's MQTT publisher moves the chart.
        canvas = browser.find_element(By.ID, "chart")
        before = int(canvas.get_attribute("data-points") or 0)

        async def publish() -> None:
            async with MqttMeterPublisher(serve["mqtt_host"], int(serve["mqtt_port"]), serve["topic"]) as pub:
                await pub(MeterReading(datetime.now(UTC), 61.7))

        loop.run(publish())
        wait("the reading on the page", lambda: "building 61.7 kW" in browser.find_element(By.ID, "site-summary").text)
        wait("a new point on the chart", lambda: int(canvas.get_attribute("data-points") or 0) > before)
        assert float(canvas.get_attribute("data-last-total")) >= 61.7

        # The EV's transaction appears; Stop on the page ends it at the simulated charger.
        row = wait("the open transaction", lambda: browser.find_elements(By.CSS_SELECTOR, "#transactions tr[data-tx]"))
        tx_id = int(row[0].get_attribute("data-tx"))
        charger = wait("the charger to know its transaction id", lambda: loop.call(charging).get(tx_id))
        wait("charging power on the chart", lambda: float(canvas.get_attribute("data-last-total") or 0) > 61.7)
        browser.save_screenshot(str(ARTIFACTS / "dashboard-charging.png"))
        assert severe_console_messages(browser) == []

        browser.find_element(By.CSS_SELECTOR, f'#transactions button[data-tx="{tx_id}"]').click()
        wait("the page to confirm", lambda: "Remote stop of" in browser.find_element(By.ID, "message").text)
        assert "Accepted" in browser.find_element(By.ID, "message").text
        wait("the charger to end it", lambda: tx_id not in loop.call(charging))
        assert tx_id in loop.call(lambda: [tx.transaction_id for tx in charger.completed])
        done = wait("the stop in the store", lambda: [t for t in api.get("/api/transactions?open=false").json()
                                                      if t["id"] == tx_id])  # fmt: skip
        assert done[0]["stop_reason"] == "Remote"
        wait(
            "the row to leave the page",
            lambda: not browser.find_elements(By.CSS_SELECTOR, f'#transactions tr[data-tx="{tx_id}"]'),
        )
        events = api.get("/api/events?kind=api_command").json()
        assert events[0]["data"]["who"] == "browser-test" and events[0]["data"]["action"] == "RemoteStopTransaction"
        browser.save_screenshot(str(ARTIFACTS / "dashboard-after-stop.png"))
        assert severe_console_messages(browser) == []
    finally:
        if stepping is not None:
            stepping.cancel()
        api.close()
        loop.run(site.stop())
        loop.close()
    assert os.path.getsize(ARTIFACTS / "dashboard-after-stop.png") > 10_000
