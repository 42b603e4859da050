"""How many simulated OCPP chargers one process drives (real time and 60x), and EV-model steps per second.

    .venv/bin/python benchmarks/sim_scale.py            # full ladder (a few minutes)
    .venv/bin/python benchmarks/sim_scale.py --quick    # smaller ladder

Charger scale: the simulated site (this process) runs against a central system in a *separate* process, so
the figure is the simulator's own capacity: by default a minimal acceptor (answers every call with a valid
canned result, no validation, no storage), with ``--csms ours`` our ``evsite serve`` (SQLite store). For each
speed and charger count the site runs ``--seconds`` of wall time with two connectors per charger and every
connector in a transaction from the start (the busiest case: MeterValues every 60 simulated seconds per
connector). A count "keeps up" when every charger booted, the event loop's p95 lag stayed under 250 ms, the
site step ran less than one step (10 simulated seconds) behind its deadline at the end, and, after the start-up
burst, no message waited in an outbox longer than one meter interval (60 simulated seconds).

EV model: ``evsite.ev_fleet.FleetStepper.step`` (the vectorised SoC step) for 10,000 and 1,000,000 EVs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evsite.clock import ScaledClock  # noqa: E402
from evsite.ev_fleet import Fleet, FleetStepper, seed_fleet  # noqa: E402
from simulators.site import SimulatedSite, charger_specs  # noqa: E402

ACCEPTOR = textwrap.dedent(
    """
    import asyncio, itertools, json, sys
    from datetime import datetime, timezone
    from websockets.asyncio.server import serve
    tx = itertools.count(1)
    def answer(action):
        now = datetime.now(timezone.utc).isoformat()
        if action == "BootNotification":
            return {"currentTime": now, "interval": 300, "status": "Accepted"}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "StartTransaction":
            return {"transactionId": next(tx), "idTagInfo": {"status": "Accepted"}}
        return {}
    async def handler(ws):
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == 2:
                    await ws.send(json.dumps([3, msg[1], answer(msg[2])]))
        except Exception:
            return
    async def main():
        async with serve(handler, "127.0.0.1", int(sys.argv[1]), subprotocols=["ocpp1.6"], ping_interval=None,
                         compression=None, backlog=4096):
            print("ready", flush=True)
            await asyncio.Future()
    asyncio.run(main())
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def central_system(kind: str) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "ours":
            cfg = Path(tmp) / "bench.toml"
            cfg.write_text(
                f'[server]\nhost = "127.0.0.1"\nport = {port}\nallow_unknown_chargers = true\n'
                f'[store]\nurl = "sqlite:///{tmp}/bench.db"\n[[id_tags]]\nid_tag = "SIM-TAG"\n'
                '[logging]\nlevel = "error"\n'
            )
            cmd = [sys.executable, "-m", "evsite", "serve", "--config", str(cfg)]
        else:
            cmd = [sys.executable, "-c", ACCEPTOR, str(port)]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"central system ({kind}) did not start on port {port}")
            yield f"ws://127.0.0.1:{port}/ocpp"
        finally:
            proc.terminate()
            proc.wait(10)


def always_charging(n: int) -> Fleet:
    """``n`` 11 kW cars with huge batteries, plugged in from t = 0 for ever: the busiest steady state."""
    full = np.full(n, 1.0)
    return Fleet(
        arrival_s=np.zeros(n),
        departure_s=np.full(n, 1e12),
        capacity_kwh=full * 1e6,
        p_charge_kw=full * 11.0,
        p_discharge_kw=full * 11.0,
        efficiency=full * 0.9,
        soc=full * 0.2,
        soc_target=full * 0.9,
        mode=np.zeros(n, dtype=np.int8),
    )


async def lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.05)
        samples.append(loop.time() - t - 0.05)


async def one_run(url: str, n: int, speed: float, seconds: float) -> dict[str, float]:
    clock = ScaledClock(speed)
    fleet = always_charging(2 * n)
    site = SimulatedSite(url, clock, charger_specs(n, 2, prefix=f"B{n}x{int(speed)}-"), fleet, step_s=10.0)
    t0 = time.perf_counter()
    await site.start()
    online = await site.wait_online(60.0)
    boot_s = time.perf_counter() - t0
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(lag_probe(lags, stop))
    sent0 = sum(cp.counters.messages_sent for cp in site.chargers)
    wall0 = time.perf_counter()
    steps = 0
    backlog: list[float] = []
    step_wall: list[float] = []
    due = clock.monotonic()
    while time.perf_counter() - wall0 < seconds:
        due += site.step_s
        await clock.sleep(max(due - clock.monotonic(), 0.0))
        s0 = time.perf_counter()
        site.step()
        step_wall.append(time.perf_counter() - s0)
        steps += 1
        backlog.append(max(cp.backlog_s() for cp in site.chargers))
    wall = time.perf_counter() - wall0
    # How late the last step ran against its deadline (simulated seconds): grows when the loop is saturated.
    late_steps = max(clock.monotonic() - due, 0.0)
    sent = sum(cp.counters.messages_sent for cp in site.chargers) - sent0
    queued = sum(len(cp.pending) for cp in site.chargers)
    stop.set()
    await probe
    await site.stop()
    p95 = float(np.percentile(lags, 95)) if lags else 0.0
    late = max(backlog[len(backlog) // 2 :], default=0.0)  # after the start-up burst
    ok = online == n and p95 < 0.25 and late_steps <= site.step_s and late <= 60.0
    return {
        "n": n,
        "online": online,
        "boot_s": boot_s,
        "msgs_per_s": sent / wall,
        "p95_lag_ms": 1000 * p95,
        "step_late_s": late_steps,
        "step_ms": 1000 * statistics.median(step_wall) if step_wall else 0.0,
        "queued": queued,
        "backlog_s": late,
        "ok": ok,
    }


async def ladder(url: str, speed: float, counts: list[int], seconds: float) -> list[dict[str, float]]:
    rows = []
    for n in counts:
        r = await one_run(url, n, speed, seconds)
        rows.append(r)
        print(
            f"  speed {speed:>4g}x  chargers {n:>5}  online {r['online']:>5}  boot {r['boot_s']:6.1f} s  "
            f"{r['msgs_per_s']:7.0f} msg/s  p95 loop lag {r['p95_lag_ms']:7.1f} ms  "
            f"site step {r['step_ms']:5.1f} ms, late {r['step_late_s']:5.1f} sim-s  "
            f"oldest queued {r['backlog_s']:6.1f} sim-s  "
            f"{'OK' if r['ok'] else 'FALLS BEHIND'}",
            flush=True,
        )
        if not r["ok"]:
            break
    return rows


def fleet_steps(n: int, seconds: float = 3.0) -> float:
    fleet = seed_fleet(n, 0)
    fleet.arrival_s[:] = 0.0
    fleet.departure_s[:] = 1e12
    fleet.soc_target[:] = 0.995
    stepper = FleetStepper(fleet)
    power = np.full(n, 6.0)
    t, steps = 0.0, 0
    start = time.perf_counter()
    times = []
    while time.perf_counter() - start < seconds:
        s = time.perf_counter()
        stepper.step(t, 4.0, power)
        times.append(time.perf_counter() - s)
        t += 4.0
        steps += 1
    return 1.0 / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csms", choices=("acceptor", "ours"), default="acceptor")
    ap.add_argument("--seconds", type=float, default=20.0, help="wall seconds per charger count")
    ap.add_argument("--speeds", default="1,60", help="comma-separated clock speeds (default: %(default)s)")
    ap.add_argument("--skip-fleet", action="store_true", help="skip the EV-model figures")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    if not args.skip_fleet:
        print("EV model (evsite.ev_fleet.FleetStepper.step, 4 s step):")
        for n in (10_000, 1_000_000):
            rate = fleet_steps(n)
            print(f"  {n:>9,} EVs: {rate:8.1f} steps/s = {rate * n / 1e6:8.1f} M EV-steps/s")

    real = [500, 1000, 2000] if args.quick else [500, 1000, 2000, 4000]
    fast = [50, 100, 200] if args.quick else [100, 200, 400, 800, 1200, 1600, 2400]
    with central_system(args.csms) as url:
        print(f"chargers (2 connectors each, all charging) against {args.csms} at {url}:")
        # At real time a run must span at least one meter interval (60 s) to see the steady load.
        speeds = {float(x) for x in args.speeds.split(",")}
        plan = [(1.0, real, max(65.0, args.seconds)), (60.0, fast, args.seconds)]
        for speed, counts, seconds in [p for p in plan if p[0] in speeds]:
            rows = asyncio.run(ladder(url, speed, counts, seconds))
            best = max((r["n"] for r in rows if r["ok"]), default=0)
            print(f"  => keeps up at {speed:g}x with {best} chargers ({2 * best} connectors)", flush=True)


if __name__ == "__main__":
    main()
