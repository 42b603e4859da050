"""GetCompositeSchedule readback: a composite above every limit that may be in force is flagged; one that shows the
limit a round replaced while the charger answered is not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from controller.loadmgmt import profiles as prof
from evsite.clock import ManualClock
from tests.loadmgmt.helpers import load_manager, site_config

NOW = datetime(2026, 3, 2, 8, tzinfo=UTC)
SHAPE = prof.Shape("A", 1, 230.0, 3)


def _answer(limit_a: float) -> SimpleNamespace:
    period = [{"startPeriod": 0, "limit": limit_a}]
    return SimpleNamespace(
        status="Accepted", charging_schedule={"chargingRateUnit": "A", "chargingSchedulePeriod": period}
    )


async def _read_back(tmp_path: Path, set_a: float, lowered_to: float | None, composite_a: float) -> set[str]:
    lm, store = load_manager(site_config(tmp_path, "building_peak_kw = 10"), ManualClock(NOW))
    t = lm._track("CP1", 1)
    assert t is not None
    t.assumed_a = set_a

    async def send(cp_id: str, request, **kw):
        if lowered_to is not None:
            t.assumed_a = lowered_to  # a decrease acknowledged while the charger was answering
        return _answer(composite_a)

    lm.csms.send = send  # type: ignore[method-assign]
    await lm._read_back(t, SHAPE)
    store.close()
    return t.flags


async def test_a_composite_above_the_limit_is_flagged(tmp_path: Path) -> None:
    assert "readback mismatch" in await _read_back(tmp_path, 16.0, None, 24.0)
    assert "readback mismatch" not in await _read_back(tmp_path, 16.0, None, 16.0)
    assert "readback mismatch" not in await _read_back(tmp_path, 16.0, None, 10.0)  # a ceiling may hold it lower


async def test_the_limit_replaced_during_the_readback_is_not_a_mismatch(tmp_path: Path) -> None:
    assert "readback mismatch" not in await _read_back(tmp_path, 16.0, 8.0, 16.0)
    assert "readback mismatch" in await _read_back(tmp_path, 16.0, 8.0, 20.0)
