"""Benchmark the daily re-plan (issue 9): a year of stored building meter history, re-planned off the event loop.

Data: Cambridge building b21 (``../shared/data/buildings/cambridge``, hourly kWh = mean kW, UTC). 2018 is the
study: ``planning.pipeline.static_ceiling`` on it gives the plan's ceiling, as ``evsite plan`` would. 2019 is
the controller's stored history: each hourly value is written as four 15-minute rows of the event log
(``controller.loadmgmt.meter_history``), the row count a year of live readings leaves (35,040).
Service: the next 100 A (400 V three-phase) above 1.6 x b21's hourly peak, as ``plan_bench.py`` rates it.

Prints the re-plan's wall time (store read + cleaning + ceiling + plan.live.json), the longest stall of the
event loop while it runs in the executor (a 10 ms ticker), and, as the reference measured in the same run,
the stall when the same job is called on the loop itself; then what the re-plan changed. The machine is
shared: the load average is printed with the figures. Run: .venv/bin/python benchmarks/replan_bench.py
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import tempfile
import time
from datetime import UTC, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
METER = REPO.parent / "shared" / "data" / "buildings" / "cambridge" / "cambridge_electricity_hourly_kwh_2018_2019.csv"
BUILDING = "b21"


async def _max_lag(stop: asyncio.Event, tick_s: float = 0.01) -> float:
    """The longest delay past ``tick_s`` of a ticker on this loop until ``stop`` is set."""
    worst = 0.0
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(tick_s)
        worst = max(worst, time.perf_counter() - t0 - tick_s)
    return worst


async def main() -> None:
    import pandas as pd

    from controller.csms import CentralSystem
    from controller.loadmgmt import meter_history
    from controller.loadmgmt.manager import LoadManager
    from controller.loadmgmt.meter_history import BUCKET_S, KIND
    from controller.loadmgmt.plan_schedule import live_path
    from controller.loadmgmt.replan import compute, live_document, write_atomically
    from controller.store import Store
    from evsite.bus import EventBus
    from evsite.clock import ManualClock
    from evsite.config import parse_config_text
    from planning.capacity import Service
    from planning.pipeline import static_ceiling

    raw = pd.read_csv(METER, usecols=["datetime_utc", BUILDING])
    kw = pd.Series(raw[BUILDING].to_numpy(float), index=pd.to_datetime(raw["datetime_utc"], utc=True)).dropna()
    study, stored = kw[kw.index.year == 2018], kw[kw.index.year == 2019]
    rating = float(math.ceil(1.6 * kw.max() * 1000 / (400 * 3**0.5) / 100) * 100)
    tmp = Path(tempfile.mkdtemp(prefix="replan-bench-"))
    cfg = parse_config_text(f"""
[store]
url = "sqlite:///{tmp / "bench.db"}"
[service]
rating_a = {rating}
voltage_v = 400
[site]
plan = "{tmp / "plan.json"}"
timezone = "Europe/London"
""")
    service = Service.from_config(cfg.service)
    local = study.tz_convert("Europe/London").tz_localize(None)
    ceilings, _loads, _ = static_ceiling(local, service)
    doc = {
        "buildings": [
            {
                "name": BUILDING,
                "ev_ceiling_kw": {
                    "tz": "Europe/London",
                    "by_day_type": {k: [round(float(v), 3) for v in c] for k, c in ceilings.items()},
                },
                "max_demand": {"kw": float(study.max())},
            }
        ]
    }
    import json

    (tmp / "plan.json").write_text(json.dumps(doc))
    store = Store.open(cfg.store.url)
    rows = [
        {"at": t + timedelta(seconds=q * BUCKET_S), "cp_id": None, "kind": KIND,
         "data": {"meter_id": "site", "mean_kw": float(v), "max_kw": float(v), "n": 1, "bucket_s": BUCKET_S}}
        for t, v in zip(stored.index.to_pydatetime(), stored.to_numpy(), strict=True) for q in range(4)
    ]  # fmt: skip
    store.add_events(rows)
    clock = ManualClock(stored.index[-1].to_pydatetime().astimezone(UTC) + timedelta(hours=3))
    bus = EventBus()
    lm = LoadManager(cfg, CentralSystem(cfg, store, clock, bus), bus, clock)
    base = lm.plan.schedule
    assert base is not None

    def job() -> object:
        r = compute(meter_history.read_history(store), base, cfg, BUILDING, str(live_path(lm.plan.path)), base)
        write_atomically(live_path(lm.plan.path), live_document(r, base, lm.plan.mtime_ns, "bench", clock.now()))
        return r

    # Baseline: the ticker alone for as long as a re-plan takes (the shared machine's own scheduling delay).
    stop = asyncio.Event()
    ticker = asyncio.create_task(_max_lag(stop))
    await asyncio.sleep(1.0)
    stop.set()
    idle_lag = await ticker

    # Reference: the same job on the event loop (what a re-plan without an executor would cost the loop).
    stop = asyncio.Event()
    ticker = asyncio.create_task(_max_lag(stop))
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    job()
    on_loop_s = time.perf_counter() - t0
    await asyncio.sleep(0.05)
    stop.set()
    on_loop_lag = await ticker

    stop = asyncio.Event()
    ticker = asyncio.create_task(_max_lag(stop))
    t0 = time.perf_counter()
    lm.replan("benchmark")
    assert lm.replanner.task is not None
    r = await lm.replanner.task
    off_loop_s = time.perf_counter() - t0
    stop.set()
    off_loop_lag = await ticker
    assert r is not None
    changes = r.changes()
    deltas = [abs(a - b) for d in ("weekday", "weekend") for a, b in zip(r.old_kw[d], r.new_kw[d], strict=True)]
    print(f"load average before the figures: {os.getloadavg()[0]:.2f} (2 cores, shared)")
    cont = service.continuous_load_factor * service.rating_kw
    print(f"building {BUILDING}: study 2018 ({study.size} h), stored history 2019 as {len(rows)} 15-minute rows; "
          f"service {rating:g} A 400 V 3-phase, continuous {cont:.1f} kW")  # fmt: skip
    print(f"no re-plan (baseline, 1 s):        loop stalled {idle_lag * 1000:.0f} ms at most")
    print(f"re-plan on the loop (reference): {on_loop_s:.2f} s, loop stalled {on_loop_lag * 1000:.0f} ms")
    print(f"re-plan in the executor:         {off_loop_s:.2f} s, loop stalled {off_loop_lag * 1000:.0f} ms at most")
    print(f"basis: {r.basis}")
    print(f"hours changed: {len(changes)} of 48; largest change {max(deltas):.1f} kW")
    print(f"stall ratio (executor / on loop): {off_loop_lag / on_loop_lag:.3f}")
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
