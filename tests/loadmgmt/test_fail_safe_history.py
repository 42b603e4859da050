"""Without ``building_peak_kw`` or a plan, the fail-safe is sized on the stored building meter history (long and
complete enough, plus a margin) and the source is logged; the history is the daily re-plan's 15-minute rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.loadmgmt.history_peak import MARGIN, peak_from_history
from controller.loadmgmt.meter_history import LoadBuckets, peak_summary
from controller.store import Store
from evsite.clock import ManualClock
from evsite.log import _FIELDS_ATTR as FIELDS_ATTR
from simulators.meter import load_meter_csv
from tests.loadmgmt.helpers import load_manager, site_config

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_the_history_must_be_long_and_complete_enough() -> None:
    assert peak_from_history(None, None, 0, NOW).peak_kw is None
    short = peak_from_history(NOW - timedelta(days=3), 10.0, 3 * 96, NOW)
    assert short.peak_kw is None and "spans 3.0 days, 7 needed" in short.why
    patchy = peak_from_history(NOW - timedelta(days=10), 10.0, 5 * 96, NOW)  # a meter silent half the time
    assert patchy.peak_kw is None and "50% of its time" in patchy.why
    full = peak_from_history(NOW - timedelta(days=10), 31.0, 10 * 96, NOW)
    assert full.peak_kw == pytest.approx(31.0 * (1 + MARGIN)) and full.seen_kw == 31.0


def _store_real_building(store: Store, shared_data: Path, days: int, peak_kw: float) -> float:
    """``days`` of a Cambridge building's hourly load ending at NOW, scaled so its highest hour is ``peak_kw``,
    as 15-minute readings through the re-plan's buckets into the store; returns the highest reading."""
    series = load_meter_csv(shared_data / "buildings/cambridge/cambridge_electricity_hourly_kwh_2018_2019.csv", "b33")
    kw = series.power_kw[24 * 60 : 24 * (60 + days)]
    kw = kw * (peak_kw / float(kw.max()))
    buckets, rows = LoadBuckets(), []
    start = NOW - timedelta(hours=len(kw))
    for h, v in enumerate(kw):
        for q in range(4):
            rows += buckets.add("site", start + timedelta(hours=h, minutes=15 * q), float(v))
    store.add_events(rows + buckets.flush())
    return float(kw.max())


@pytest.mark.parametrize("days", [14, 3])
def test_the_fail_safe_is_sized_on_the_stored_meter_history(
    tmp_path: Path, shared_data: Path, caplog, days: int
) -> None:
    cfg = site_config(tmp_path, "reserve_kw = 0")  # no building_peak_kw, no plan
    clock = ManualClock(NOW)
    lm, store = load_manager(cfg, clock)
    seen = _store_real_building(store, shared_data, days, 25.0)
    assert lm.fail_safe_a == 0.0  # nothing read yet: the building is unknown, 0 A
    with caplog.at_level(logging.INFO, logger="controller.loadmgmt"):
        lm.seed_from_csms()
    sized = [r for r in caplog.records if r.getMessage() == "fail_safe_sized"]
    assert sized, "the fail-safe's source was not logged"
    fields = getattr(sized[-1], FIELDS_ATTR)
    assert fields["source"] == lm.fail_safe_source and fields["fail_safe_a"] == round(lm.fail_safe_a, 2)
    if days == 14:
        # The same fail-safe as a configured peak of the highest reading plus the margin.
        (tmp_path / "ref").mkdir()
        same, other = load_manager(site_config(tmp_path / "ref", f"reserve_kw = 0\nbuilding_peak_kw = {seen * 1.2}"),
                                   clock)  # fmt: skip
        assert lm.fail_safe_a == pytest.approx(same.fail_safe_a) and lm.fail_safe_a > 6.0
        assert lm.fail_safe_source.startswith("building meter history: highest reading 25.0 kW over 14.0 days")
        other.close()
    else:
        assert lm.fail_safe_a == 0.0
        assert "spans 3.0 days, 7 needed" in lm.fail_safe_source
    store.close()


def test_the_history_summary_reads_the_same_on_postgresql(pg_url: str) -> None:
    store = Store.open(pg_url)
    try:
        buckets = LoadBuckets()
        rows = []
        for k in range(8):
            rows += buckets.add("site", NOW + timedelta(minutes=15 * k), 10.0 + k)
        store.add_events(rows + buckets.flush())
        first, top, n = peak_summary(store, NOW - timedelta(days=1))
        assert (first, top, n) == (NOW, 17.0, 8)
        assert peak_summary(store, NOW + timedelta(hours=3)) == (None, None, 0)
    finally:
        store.close()
