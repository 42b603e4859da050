"""Without ``building_peak_kw`` or a plan, the fail-safe is sized on the building meter's stored hourly maxima
(long and complete enough, plus a margin), the source is logged, and the live meter feeds that history."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from controller.loadmgmt.meter_history import MARGIN, peak_from_history
from evsite.clock import ManualClock
from evsite.log import _FIELDS_ATTR as FIELDS_ATTR
from evsite.meter_reading import MeterReading
from simulators.meter import load_meter_csv
from tests.loadmgmt.helpers import load_manager, site_config

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _hours(days: float, every_h: int = 1) -> list[datetime]:
    n = int(days * 24)
    return [NOW - timedelta(hours=n - k) for k in range(0, n, every_h)]


def test_the_history_must_be_long_and_complete_enough() -> None:
    assert peak_from_history([], [], NOW).peak_kw is None
    short = peak_from_history(_hours(3), [10.0] * 72, NOW)
    assert short.peak_kw is None and "spans 3.0 days, 7 needed" in short.why
    patchy = _hours(10, every_h=2)  # readings in half the hours: a silent meter may have missed the peak
    gaps = peak_from_history(patchy, [10.0] * len(patchy), NOW)
    assert gaps.peak_kw is None and "50% of its hours" in gaps.why
    kw = [10.0] * 240
    kw[100] = 31.0
    full = peak_from_history(_hours(10), kw, NOW)
    assert full.peak_kw == pytest.approx(31.0 * (1 + MARGIN)) and full.seen_kw == 31.0


def _real_building_fortnight(shared_data: Path, days: int, peak_kw: float) -> tuple[list[datetime], np.ndarray]:
    """A Cambridge building's hourly load (hourly kWh = mean kW), ``days`` of it ending an hour before NOW,
    scaled so its highest hour is ``peak_kw``: stands in for the stored hourly maxima."""
    series = load_meter_csv(shared_data / "buildings/cambridge/cambridge_electricity_hourly_kwh_2018_2019.csv", "b33")
    kw = series.power_kw[24 * 60 : 24 * (60 + days)]
    kw = kw * (peak_kw / float(kw.max()))
    return [NOW - timedelta(hours=len(kw) - k) for k in range(len(kw))], kw


@pytest.mark.parametrize("days", [14, 3])
def test_the_fail_safe_is_sized_on_the_stored_meter_history(
    tmp_path: Path, shared_data: Path, caplog, days: int
) -> None:
    hours, kw = _real_building_fortnight(shared_data, days, 25.0)
    cfg = site_config(tmp_path, "reserve_kw = 0")  # no building_peak_kw, no plan
    clock = ManualClock(NOW)
    lm, store = load_manager(cfg, clock)
    for h, v in zip(hours, kw, strict=True):
        store.record_building_peak(h, float(v))
    assert lm.fail_safe_a == 0.0  # nothing read yet: unknown building, 0 A
    with caplog.at_level(logging.INFO, logger="controller.loadmgmt"):
        lm.seed_from_csms()
    sized = [r for r in caplog.records if r.getMessage().startswith("fail_safe_sized")]
    assert sized, "the fail-safe's source was not logged"
    if days == 14:
        # The same fail-safe as a configured peak of the highest hour plus the margin.
        (tmp_path / "ref").mkdir()
        same, other = load_manager(site_config(tmp_path / "ref", f"reserve_kw = 0\nbuilding_peak_kw = {25.0 * 1.2}"),
                                   clock)  # fmt: skip
        assert lm.fail_safe_a == pytest.approx(same.fail_safe_a) and lm.fail_safe_a > 6.0
        assert lm.fail_safe_source.startswith("building meter history: highest hourly maximum 25.0 kW")
        other.close()
    else:
        assert lm.fail_safe_a == 0.0
        assert "spans 3.0 days, 7 needed" in lm.fail_safe_source
    fields = getattr(sized[-1], FIELDS_ATTR)
    assert fields["source"] == lm.fail_safe_source and fields["fail_safe_a"] == round(lm.fail_safe_a, 2)
    store.close()


def test_live_readings_keep_each_hours_highest_reading(tmp_path: Path) -> None:
    lm, store = load_manager(site_config(tmp_path, "building_peak_kw = 25"), ManualClock(NOW))
    for minute, kw in ((0, 12.0), (20, 18.5), (40, 14.0), (65, 9.0), (70, 11.0)):
        lm.handle("meter/site", MeterReading(NOW + timedelta(minutes=minute), kw))
    lm.handle("meter/site", MeterReading(NOW + timedelta(minutes=30), 40.0))  # late, for an hour already passed
    assert store.building_peaks(NOW - timedelta(hours=1)) == [(NOW, 18.5)]  # written as the next hour began
    lm.handle("meter/site", MeterReading(NOW + timedelta(minutes=125), 7.0))
    assert store.building_peaks(NOW - timedelta(hours=1)) == [(NOW, 18.5), (NOW + timedelta(hours=1), 11.0)]
    store.close()
