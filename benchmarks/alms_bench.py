"""ALMS benchmark: a load-managed site against the simulated physical world, and how fast a limit drop lands.

    python benchmarks/alms_bench.py --quick     # under a minute: 10 chargers for 1 h, limit drop on 50 chargers
    python benchmarks/alms_bench.py             # 50 chargers for 24 h; limit drop on 50, 200 and 1,000 chargers
    python benchmarks/alms_bench.py --faults    # the 24 h site twice more, with the faults of issue 9

Part 1 (site): simulated chargers (2 x 11 kW connectors each) on a service that cannot carry them at full
power, beside a real building's hourly load (Cambridge b33, scaled to 40 % of the continuous limit), with
real WebSockets and the real Mosquitto broker (``bash .ci/services``). The simulator counts violations.
Part 2 (latency): N chargers with a car on every connector; an operator drops the site limit to half
(``SiteLimitOverride``) and the time is measured until load management has every decrease acknowledged
(one allocation round: decreases sent to all chargers concurrently and acknowledged; the GetCompositeSchedule
readback runs after it, in the background). ``--sizes 200,1000`` picks the charger counts, ``--skip-site``
runs only part 2 (the last line is then ``violations: 0`` of part 1 not run, so it is omitted).
``--faults`` runs part 1 at full size twice with faults instead (``FAULT_RUNS``): chargers dropping their
connection every 30 simulated minutes, 5 accepting only stack level 0, 3 rejecting every profile, every 5th car
not resuming after a pause and an operator's limit drop to half for two hours; then the building meter silent
for two hours and the controller killed and restarted 10 simulated minutes later. The last line is
``violations: N`` (part 1's count; with ``--faults`` the sum over both runs).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import logging
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evsite.cli.alms_run import (  # noqa: E402
    AlmsFaults,
    alms_config,
    arriving_fleet,
    free_port,
    run_alms,
    scaled_building,
)

DATA = REPO.parent / "shared" / "data" / "buildings" / "cambridge" / "cambridge_electricity_hourly_kwh_2018_2019.csv"


def site_base(chargers: int) -> dict:
    # Service sized so the chargers at full power (22 kW each) are 2.5 x what is left beside the building.
    limit_kw = chargers * 22.0 / 2.5 / 0.6
    rating_a = limit_kw / 0.8 / (400 * 3**0.5 / 1000)
    return {
        "service": {"rating_a": round(rating_a, 1), "voltage_v": 400, "phases": 3},
        # 120 simulated s: at 600x that is 0.2 s of real time for the MQTT path (a loaded machine needs it).
        "meter": {"stale_after_s": 120},
        "site": {"profile_validity_s": 300, "period_s": 60, "building_peak_kw": 0.4 * limit_kw},
    }


H = 3600.0
#: The faults of issue 9 at the full size (50 chargers, 24 simulated hours), in simulated seconds.
FAULT_RUNS = {
    "drops, stack level 0 only, rejects, no-resume cars, limit drop": AlmsFaults(
        drop_every_s=1800.0, stack0_only=5, reject_profiles=3, no_resume_every=5, limit_drop=(10 * H, 12 * H, 0.0)
    ),
    "meter silent 2 h, controller killed and restarted": AlmsFaults(
        meter_silent=(8 * H, 10 * H), controller_restart_at_s=14 * H, controller_down_s=600.0
    ),
}


async def site_run(chargers: int, hours: float, speed: float, tmp: Path, faults: AlmsFaults | None = None) -> dict:
    db, topic = f"sqlite:///{tmp / f'site{chargers}-{uuid.uuid4().hex[:6]}.db'}", f"alms-bench/{uuid.uuid4().hex[:8]}"
    cfg = alms_config(site_base(chargers), chargers=chargers, connectors=2, max_a=16.0, port=free_port(), db=db,
                      topic=topic, drivers=3 * chargers)  # fmt: skip
    limit = cfg.service.rating_kw * 0.8
    building = scaled_building(DATA, "b33", 0.4 * limit)
    start = datetime(2026, 3, 2, 0, tzinfo=UTC)
    fleet = arriving_fleet(3 * chargers, hours, seed=1)
    if faults is not None and faults.limit_drop is not None:  # half the continuous limit
        faults = dataclasses.replace(faults, limit_drop=(*faults.limit_drop[:2], limit / 2))
    result = await run_alms(cfg, building, fleet, hours=hours, speed=speed, start=start,
                            replay_from=datetime(2018, 3, 5, tzinfo=UTC), faults=faults)  # fmt: skip
    r = result.report
    print(
        f"site: {chargers} chargers x 2 x 11 kW, {hours:g} h at {speed:g}x ({result.wall_s:.0f} s wall): limit "
        f"{r['limit_kw']:.1f} kW, peak {r['peak_kw']:.1f} kW, {r['seconds_over']:.0f} s over, violations "
        f"{r['violations']}; energy {r['energy_delivered_kwh']:.0f} / {r['energy_requested_kwh']:.0f} kWh, "
        f"{r['sessions_served']}/{r['sessions']} sessions served"
    )
    return r


SPEED_DROP = 1.0  # real time: meter values and refreshes arrive at the rate a real site sends them
START_DROP = datetime(2026, 3, 2, 8, tzinfo=UTC)


async def simulated_chargers(chargers: int, port: int, sim_start: str, wall0: float) -> None:
    """The chargers of part 2, in their own process (as real chargers are): a car on every connector."""
    from evsite.clock import ScaledClock
    from simulators.site import SimulatedSite, charger_specs

    start = datetime.fromisoformat(sim_start) + timedelta(seconds=(time.time() - wall0) * SPEED_DROP)
    clock = ScaledClock(SPEED_DROP, start=start)
    fleet = arriving_fleet(2 * chargers, 1.0, seed=2)
    fleet.arrival_s[:] = 5.0
    fleet.departure_s[:] = 36_000.0
    site = SimulatedSite(f"ws://127.0.0.1:{port}/ocpp", clock, charger_specs(chargers, 2, "SIM"), fleet,
                         step_s=5.0, fleet_origin=clock.now())  # fmt: skip
    await site.run(10.0)


async def drop_latency(chargers: int, tmp: Path) -> float:
    """Wall seconds from a site limit drop to every decrease acknowledged (see the module docstring).

    The controller runs here; the simulated chargers run in a child process, so the figure is the central
    system's and load manager's, not the simulator's share of the same two cores.
    """
    from controller.runtime import SiteRuntime
    from evsite.clock import ScaledClock
    from evsite.site_state import SiteLimitOverride

    db, topic = f"sqlite:///{tmp / f'drop{chargers}.db'}", f"alms-bench/{uuid.uuid4().hex[:8]}"
    cfg = alms_config(site_base(chargers) | {"meter": {"stale_after_s": 1e6}}, chargers=chargers, connectors=2,
                      max_a=16.0, port=free_port(), db=db, topic=topic, drivers=2 * chargers)  # fmt: skip
    data = cfg.model_dump()
    data["mqtt"]["enabled"] = False
    # Profiles valid 15 min (refreshed after 7.5): no refresh round falls into the measured drop.
    data["site"].update(ev_only_meter=True, period_s=3600.0, debounce_s=0.0, profile_validity_s=900.0)
    cfg = type(cfg).model_validate(data)
    clock = ScaledClock(SPEED_DROP, start=START_DROP)
    runtime = SiteRuntime(cfg, clock)
    await runtime.start()
    lm = runtime.loadmgmt
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--sim-only", str(chargers), str(cfg.server.port), clock.now().isoformat(),
        str(time.time()), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            active = [t for t in lm.tracks.values() if t.active]
            if len(active) == 2 * chargers and all(t.assumed_a and not t.unacked for t in active):
                break
            await asyncio.sleep(0.2)
        else:
            print(f"not settled: {sum(t.active for t in lm.tracks.values())} active, {lm.rounds} rounds")
        await asyncio.sleep(1.0)
        active = sum(t.active for t in lm.tracks.values())
        t0, cpu0 = time.perf_counter(), time.process_time()
        lm.handle(
            "loadmgmt/site_limit", SiteLimitOverride(lm.limit_kw() / 2, clock.now() + timedelta(hours=1), "bench")
        )
        await lm.rebalance()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        pending = sum(t.unacked for t in lm.tracks.values())
    finally:
        child.terminate()
        await child.wait()
        await runtime.stop()
    print(f"limit drop: {chargers} chargers ({2 * chargers} connectors, {active} with a car): all decreases "
          f"acknowledged in {elapsed:.2f} s wall ({pending} unacknowledged); controller process CPU {cpu:.2f} s "
          f"(all its threads; the chargers run in a child process)")  # fmt: skip
    return elapsed


class WarningCounter(logging.Handler):
    """Counts the controller's warning events by name (printed once per run instead of one line each)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[str(record.msg)] += 1

    def flush_counts(self) -> None:
        if self.counts:
            print("  warning events: " + ", ".join(f"{k} x{v}" for k, v in self.counts.most_common()))
        self.counts.clear()


async def main(quick: bool, sizes: list[int] | None, skip_site: bool, faults: bool) -> int:
    import os
    import tempfile

    counter = WarningCounter()
    logging.getLogger().addHandler(counter)

    tmp = Path(tempfile.mkdtemp(prefix="alms-bench-"))
    print(f"load average: {os.getloadavg()[0]:.2f} (2 cores shared with parallel work)")
    if faults:
        total = 0
        for name, f in FAULT_RUNS.items():
            print(f"faults: {name}")
            total += (await site_run(50, 24.0, 600.0, tmp, f))["violations"]
            counter.flush_counts()
        print(f"violations: {total}")
        return 0
    r = None if skip_site else await (site_run(10, 1.0, 300.0, tmp) if quick else site_run(50, 24.0, 600.0, tmp))
    for n in sizes or ([50] if quick else [50, 200, 1000]):
        await drop_latency(n, tmp)
    if r is not None:
        print(f"violations: {r['violations']}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", help="comma-separated charger counts for the limit-drop part")
    p.add_argument("--skip-site", action="store_true", help="run only the limit-drop part")
    p.add_argument("--faults", action="store_true", help="the 24 h site with faults (twice), no limit-drop part")
    p.add_argument("--sim-only", nargs=4, metavar=("CHARGERS", "PORT", "SIM_START", "WALL0"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sim_only:
        n, port, sim_start, wall0 = args.sim_only
        raise SystemExit(asyncio.run(simulated_chargers(int(n), int(port), sim_start, float(wall0))))
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else None
    raise SystemExit(asyncio.run(main(args.quick, sizes, args.skip_site, args.faults)))
