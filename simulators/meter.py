"""A simulated building meter: replays a meter CSV (or a synthetic day shape) and publishes readings.

Why: load management needs a live building load, and tests and the demo have no building. The meter maps the
simulation clock onto a recorded series (``../shared/data/buildings/...``: hourly kWh = mean kW), interpolates
between samples, wraps at the end, and publishes a ``controller.meter_bridge.MeterReading`` every
``interval_s`` simulated seconds, either on the in-process bus (``meter/site``, no broker needed) or over MQTT
(``aiomqtt``, the JSON payload documented in ``controller.meter_bridge``), which the controller's
``MeterBridge`` turns back into bus readings.

The pure part is ``ReplayLoadSeries.power_at`` (vectorised over times); publishing is a thin loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from evsite.bus import EventBus
from evsite.cancellation import raise_if_cancelling
from evsite.clock import Clock
from evsite.log import log_event
from evsite.meter_reading import BUS_TOPIC, MeterReading

logger = logging.getLogger("evsite.simulators.meter")


class MeterDataError(ValueError):
    """A meter file that cannot be replayed; ``str()`` names the file, the column and the problem."""


@dataclass(frozen=True)
class ReplayLoadSeries:
    """A building load series: ``t_s`` seconds after ``start`` (increasing), ``power_kw`` at each."""

    start: datetime
    t_s: np.ndarray
    power_kw: np.ndarray
    name: str = "site"

    @property
    def span_s(self) -> float:
        """Length of one replay cycle: the recorded span plus one sample step."""
        step = float(np.median(np.diff(self.t_s))) if len(self.t_s) > 1 else 3600.0
        return float(self.t_s[-1] - self.t_s[0]) + step

    def power_at(self, offset_s: np.ndarray | float) -> np.ndarray:
        """Load at ``offset_s`` seconds into the replay (wrapping), linearly interpolated."""
        x = np.mod(np.asarray(offset_s, dtype=float), self.span_s) + self.t_s[0]
        period = self.span_s
        # Append the first sample one cycle later so the wrap interpolates smoothly.
        xs = np.append(self.t_s, self.t_s[0] + period)
        ys = np.append(self.power_kw, self.power_kw[0])
        return np.interp(x, xs, ys)


def load_meter_csv(
    path: str | Path, column: str, time_column: str | None = None, scale: float = 1.0
) -> ReplayLoadSeries:
    """Read one column of a meter CSV (first column, or ``time_column``, holds the timestamps).

    Missing readings ('?', empty) are interpolated; timestamps without a zone are taken as UTC.
    """
    import pandas as pd

    p = Path(path)
    try:
        header = pd.read_csv(p, nrows=0)
    except FileNotFoundError:
        raise MeterDataError(f"{p}: meter file not found") from None
    except (OSError, ValueError) as err:
        raise MeterDataError(f"{p}: cannot read as CSV: {err}") from None
    tcol = time_column or header.columns[0]
    for c in (tcol, column):
        if c not in header.columns:
            shown = ", ".join(map(str, header.columns[:12]))
            raise MeterDataError(f"{p}: no column {c!r} (columns: {shown}...)")
    if column == tcol:
        raise MeterDataError(f"{p}: {column!r} is the time column, not a load column")
    df = pd.read_csv(p, usecols=[tcol, column], na_values=["?", ""])
    times = pd.to_datetime(df[tcol], utc=True, errors="coerce")
    bad = times.isna()
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise MeterDataError(f"{p}: line {line}: {tcol} is not a date-time: {df[tcol].iloc[line - 2]!r}")
    values = pd.to_numeric(df[column], errors="coerce")
    if values.notna().sum() < 2:
        raise MeterDataError(f"{p}: column {column!r} has fewer than two numeric readings")
    values = values.interpolate(limit_direction="both")
    naive = times.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    order = np.argsort(naive, kind="stable")
    t = naive[order]
    t0 = pd.Timestamp(t[0]).tz_localize("UTC").to_pydatetime()
    t_s = (t - t[0]) / np.timedelta64(1, "s")
    return ReplayLoadSeries(
        start=t0, t_s=t_s.astype(float), power_kw=values.to_numpy(float)[order] * scale, name=column
    )


def synthetic_series(
    base_kw: float = 80.0,
    peak_kw: float = 220.0,
    days: int = 7,
    step_s: float = 900.0,
    seed: int = 0,
    start: datetime | None = None,
) -> ReplayLoadSeries:
    """An office-like week: a base load, a weekday bump peaking early afternoon, 3 % seeded noise.

    Generated (not real data) so the product has a default meter without shipping any dataset.
    """
    start = start or datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    t_s = np.arange(0.0, days * 86_400.0, step_s)
    hour = (t_s / 3600.0) % 24.0
    weekday = ((t_s // 86_400.0) + start.weekday()) % 7 < 5
    bump = np.exp(-0.5 * ((hour - 13.0) / 3.0) ** 2) * np.where(weekday, 1.0, 0.25)
    rng = np.random.default_rng(seed)
    power = (base_kw + (peak_kw - base_kw) * bump) * (1.0 + 0.03 * rng.standard_normal(t_s.size))
    return ReplayLoadSeries(start=start, t_s=t_s, power_kw=np.maximum(power, 0.0), name="synthetic")


Publisher = Callable[[MeterReading], Awaitable[None] | None]


def bus_publisher(bus: EventBus, topic: str = BUS_TOPIC) -> Publisher:
    """Publish readings in-process (no broker)."""

    def publish(reading: MeterReading) -> None:
        bus.publish(topic, reading)

    return publish


class BuildingMeter:
    """Replays ``series`` from ``replay_from`` (default its start) on ``clock``, one reading per interval."""

    def __init__(
        self,
        series: ReplayLoadSeries,
        clock: Clock,
        interval_s: float = 10.0,
        replay_from: datetime | None = None,
        meter_id: str = "site",
    ) -> None:
        self.series = series
        self.clock = clock
        self.interval_s = interval_s
        self.meter_id = meter_id
        offset0 = (replay_from - series.start).total_seconds() if replay_from is not None else 0.0
        self._offset0 = offset0
        self._mono0 = clock.monotonic()
        self._energy_kwh = 0.0
        self._last_mono: float | None = None
        self.published = 0

    def power_kw_at(self, mono: float) -> float:
        """The building's true load at clock-monotonic ``mono`` (what the ground truth counts)."""
        return float(self.series.power_at(self._offset0 + mono - self._mono0))

    def read(self) -> MeterReading:
        """The reading now (advances the energy register by the time since the previous reading)."""
        mono = self.clock.monotonic()
        power = self.power_kw_at(mono)
        if self._last_mono is not None:
            self._energy_kwh += power * (mono - self._last_mono) / 3600.0
        self._last_mono = mono
        return MeterReading(ts=self.clock.now(), power_kw=power, meter_id=self.meter_id, energy_kwh=self._energy_kwh)

    async def run(self, publish: Publisher) -> None:
        """Publish a reading every ``interval_s`` until cancelled (also when the publisher swallowed the cancel:
        ``evsite.cancellation``)."""
        while True:
            result = publish(self.read())
            if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
                await result
            raise_if_cancelling()
            self.published += 1
            await self.clock.sleep(self.interval_s)


class MqttMeterPublisher:
    """Publishes readings as JSON on an MQTT topic; use as ``async with`` around ``BuildingMeter.run``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, topic: str = "evsite/site/meter") -> None:
        self.host, self.port, self.topic = host, port, topic
        self._client = None

    async def __aenter__(self) -> MqttMeterPublisher:
        import aiomqtt

        self._client = aiomqtt.Client(self.host, self.port)
        await self._client.__aenter__()
        log_event(logger, "meter_mqtt_connected", host=self.host, port=self.port, topic=self.topic)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.__aexit__(*exc)
            self._client = None

    async def __call__(self, reading: MeterReading) -> None:
        if self._client is None:
            raise RuntimeError("MqttMeterPublisher used outside `async with`")
        if not math.isfinite(reading.power_kw):
            raise ValueError(f"refusing to publish a non-finite reading: {reading.power_kw}")
        await self._client.publish(self.topic, reading.to_json())


def replay_start_for(series: ReplayLoadSeries, now: datetime) -> datetime:
    """Where to start replaying so the replay's time of week matches ``now`` (offices differ on Mondays)."""
    week = timedelta(days=7)
    delta = (now - series.start) % week
    return series.start + delta
