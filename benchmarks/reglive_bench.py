"""The regulation aggregator live inside load management: does the site follow RegD within its limit?

    python benchmarks/reglive_bench.py --quick   # the e2e test's size: 4 chargers (2 bidirectional), 8 cars, 12 min
    python benchmarks/reglive_bench.py           # 10 chargers (4 bidirectional), 20 cars, a full hour of RegD

The real central system, load management and the aggregator (``evsite serve``'s ``SiteRuntime``) against simulated
chargers over real WebSockets, the building meter and the RegD replay over the real Mosquitto (``bash
.ci/services``); a 400 V service at 80 % continuous (125 A for --quick: 69.3 kW, else ``--rating-a``, 250 A: 138.6
kW, so the cars at full power exceed what the building leaves), a real building's hourly load (Cambridge b33)
scaled to a 20 kW peak, ``[site] export_limit_kw`` 10. Cars plug in between 08:55 and 08:57, the offer is fixed at
09:00 and the signal (PJM RegD 2020-07-16 from 10:00 EPT) replayed from then. Every figure comes from the simulator
(site load, each connector's export register), except the reference: the score of the response the aggregator
*commanded* in the same run (the sum of its setpoints), which shows what load management, OCPP and the cars'
physics cost. Prints the load average: a loaded machine runs the accelerated clock with more lag between the parts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evsite.cli.alms_run import free_port, scaled_building  # noqa: E402
from evsite.cli.regulation_live import parked_fleet, regulation_site_config, run_regulation_replay  # noqa: E402
from simulators.regulation_signal import load_signal  # noqa: E402

DATA = REPO.parent / "shared" / "data"


async def main(args: argparse.Namespace) -> None:
    minutes = 12 if args.quick else args.minutes
    chargers, bidi, cars = (4, 2, 8) if args.quick else (args.chargers, args.bidirectional, args.cars)
    rating_a = 125.0 if args.quick else args.rating_a
    with tempfile.TemporaryDirectory() as tmp:
        cfg = regulation_site_config(chargers=chargers, bidirectional=bidi, port=free_port(),
                                     db=f"sqlite:///{Path(tmp) / 'r.db'}", topic=f"reglive/{uuid.uuid4().hex[:8]}",
                                     mqtt=(args.mqtt_host, args.mqtt_port), rating_a=rating_a)  # fmt: skip
        building = scaled_building(DATA / "buildings/cambridge/cambridge_electricity_hourly_kwh_2018_2019.csv",
                                   "b33", 20.0)  # fmt: skip
        signal = load_signal(DATA / "regulation/pjm_regd_2s_2020-07-16_17.csv")
        r = await run_regulation_replay(
            cfg, building, parked_fleet(cars, (300.0, 420.0), 6 * 3600.0, seed=5), signal,
            start=datetime(2026, 3, 2, 8, 50, tzinfo=UTC), hours=(11 + minutes) / 60, speed=args.speed,
            signal_at=datetime(2026, 3, 2, 9, tzinfo=UTC), signal_index=10 * 1800, samples=minutes * 30,
            replay_from=datetime(2018, 3, 5, 8, tzinfo=UTC),
        )  # fmt: skip
    rep = r.alms.report
    fed = {k: v for k, v in r.exported_kwh.items() if v > 0}
    s, c = r.score, r.commanded_score
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"site: {chargers} chargers x 2 x 11 kW ({bidi} bidirectional), {cars} cars, service limit "
          f"{rep['limit_kw']:.1f} kW; {minutes} min of RegD at {args.speed:g}x "
          f"({r.alms.wall_s:.1f} s wall)")  # fmt: skip
    print(f"ground truth: peak {rep['peak_kw']:.1f} kW, {rep['seconds_over']:.0f} s over the limit, "
          f"violations {rep['violations']}")  # fmt: skip
    print(f"offer at 09:00: base {-r.base_kw:.1f} kW consumption, capacity {r.capacity_kw:.1f} kW; EV load over the "
          f"replay {r.ev_kw.min():.1f} .. {r.ev_kw.max():.1f} kW")  # fmt: skip
    print(f"score of the measured response (planning.pjm_score, 2 s): accuracy {s.accuracy:.3f}, delay {s.delay:.3f} "
          f"({s.delay_s:g} s), precision {s.precision:.3f}, composite {s.composite:.3f}")  # fmt: skip
    print(f"reference, the commanded response in the same run: accuracy {c.accuracy:.3f}, delay {c.delay:.3f}, "
          f"precision {c.precision:.3f}, composite {c.composite:.3f}")  # fmt: skip
    outside = sorted(set(fed) - r.bidirectional)
    print(f"discharge: {sum(fed.values()):.2f} kWh fed back by {len(fed)} connectors, "
          f"{len(outside)} of them not bidirectional {outside}")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the e2e test's size")
    ap.add_argument("--chargers", type=int, default=10)
    ap.add_argument("--bidirectional", type=int, default=4)
    ap.add_argument("--cars", type=int, default=20)
    ap.add_argument("--minutes", type=int, default=60, help="minutes of RegD replayed after 09:00")
    ap.add_argument("--rating-a", type=float, default=250.0, help="service rating (A at 400 V; --quick: 125)")
    ap.add_argument("--speed", type=float, default=40.0)
    ap.add_argument("--mqtt-host", default="127.0.0.1")
    ap.add_argument("--mqtt-port", type=int, default=1883)
    asyncio.run(main(ap.parse_args()))
