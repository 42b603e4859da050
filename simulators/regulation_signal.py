"""Regulation signals: read a RegD-style file, replay it on the aggregator's step grid, publish it over MQTT.

File format (like ``../shared/data/regulation/pjm_regd_2s_*.csv``): a CSV with a header; the first column is
the timestamp (ISO 8601; naive timestamps are taken as given, in the operator's time zone), the second the
per-unit signal in [-1, 1] (+1 = raise/inject, -1 = lower/absorb). Rows must be in time order.

MQTT payload (what ``publish_signal`` sends and ``controller.aggregator.signal_source`` accepts), JSON::

    {"ts": "2026-03-02T08:00:00+00:00", "value": -0.27}

Pure parts (``load_signal``, ``RegulationSignal.on_steps``) are plain numpy; the publisher is a thin
adapter that takes a ``Clock`` so a replay runs at any speed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from evsite.cancellation import raise_if_cancelling
from evsite.clock import Clock


class SignalFileError(ValueError):
    """A signal file that cannot be used; ``str()`` names the file, the line and what is wrong."""


@dataclass(frozen=True)
class RegulationSignal:
    """A per-unit signal: ``offset_s[i]`` seconds after ``start`` the value is ``value[i]`` (held until the next)."""

    start: datetime
    offset_s: NDArray[np.float64]
    value: NDArray[np.float64]

    @property
    def duration_s(self) -> float:
        step = float(np.median(np.diff(self.offset_s))) if self.offset_s.size > 1 else 0.0
        return float(self.offset_s[-1] + step)

    def index_at(self, when: datetime) -> int:
        """Index of the sample in force at ``when``."""
        off = (when - self.start).total_seconds()
        return int(np.clip(np.searchsorted(self.offset_s, off, side="right") - 1, 0, self.offset_s.size - 1))

    def on_steps(self, from_s: float, dt_s: float, n: int) -> NDArray[np.float64]:
        """``n`` values on a grid of ``dt_s`` starting ``from_s`` after ``start`` (zero-order hold)."""
        t = from_s + dt_s * np.arange(n)
        if n and t[-1] >= self.duration_s:
            raise SignalFileError(
                f"the signal covers {self.duration_s / 3600:.2f} h from {self.start}; "
                f"{n * dt_s / 3600:.2f} h from +{from_s / 3600:.2f} h were asked for"
            )
        idx = np.clip(np.searchsorted(self.offset_s, t, side="right") - 1, 0, self.offset_s.size - 1)
        return self.value[idx]


def load_signal(path: str | Path) -> RegulationSignal:
    """Read and validate a signal file (see the module docstring)."""
    import pandas as pd

    p = Path(path)
    try:
        df = pd.read_csv(p)
    except FileNotFoundError:
        raise SignalFileError(f"{p}: signal file not found") from None
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise SignalFileError(f"{p}: not a readable CSV: {err}") from None
    if df.shape[1] < 2 or len(df) < 2:
        raise SignalFileError(f"{p}: expected a header, then rows of 'timestamp,value' (at least two rows)")
    ts = pd.to_datetime(df.iloc[:, 0], errors="coerce")
    bad = ts.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise SignalFileError(f"{p}: line {i + 2}: not a timestamp: {df.iloc[i, 0]!r}")
    val = pd.to_numeric(df.iloc[:, 1], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(val) | (np.abs(val) > 1.0 + 1e-9)
    if bad.any():
        i = int(np.argmax(bad))
        raise SignalFileError(f"{p}: line {i + 2}: value must be a number in [-1, 1], got {df.iloc[i, 1]!r}")
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC")
    off = (ts - ts.iloc[0]).dt.total_seconds().to_numpy(float)
    if np.any(np.diff(off) <= 0):
        i = int(np.argmax(np.diff(off) <= 0))
        raise SignalFileError(f"{p}: line {i + 3}: timestamps must increase")
    return RegulationSignal(ts.iloc[0].to_pydatetime(), off, val)


def signal_payload(ts: datetime, value: float) -> str:
    """The JSON payload for one sample."""
    if not math.isfinite(value):
        raise ValueError(f"signal value must be finite, got {value}")
    return json.dumps({"ts": ts.isoformat(), "value": round(float(value), 6)})


async def publish_signal(
    signal: RegulationSignal,
    clock: Clock,
    host: str = "127.0.0.1",
    port: int = 1883,
    topic: str = "evsite/site/regulation",
    start_index: int = 0,
    count: int | None = None,
) -> int:
    """Replay ``signal`` on MQTT at its own pace on ``clock`` (time-stamped with the clock); returns the count."""
    import aiomqtt

    end = signal.value.size if count is None else min(signal.value.size, start_index + count)
    sent = 0
    async with aiomqtt.Client(host, port) as client:
        t_ref, off_ref = clock.monotonic(), signal.offset_s[start_index]
        now0 = clock.now()
        for i in range(start_index, end):
            due = signal.offset_s[i] - off_ref
            wait = due - (clock.monotonic() - t_ref)
            if wait > 0:
                await clock.sleep(wait)
            await client.publish(topic, signal_payload(now0 + timedelta(seconds=due), signal.value[i]))
            raise_if_cancelling()  # a cancel aiomqtt's publish swallowed (evsite.cancellation)
            sent += 1
    return sent
