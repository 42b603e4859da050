"""Load benchmark of `evsite serve`: held connections at a steady message rate, then a reconnect storm.

The server runs as its own process (`evsite serve`, SQLite store, auto-registration on); the load comes from
lightweight raw-WebSocket charge points in separate worker processes (an ``asyncio.Protocol`` each, frames
pre-built, no per-message coroutine), so what is measured is the server.

Phases:

1. connect ``--chargers`` charge points; each sends BootNotification and StatusNotification and answers the
   central system's GetConfiguration / ChangeConfiguration (first boot: capabilities are read) and load
   management's SetChargingProfile / ClearChargingProfile (Accepted) and GetCompositeSchedule (Rejected);
   the steady phase starts once the server's own calls have stopped for 2 s;
2. steady: every charge point sends MeterValues every ``chargers / rate`` seconds for ``--steady-s`` seconds;
3. storm: every connection is dropped, then all charge points reconnect at once and each sends Boot, Status,
   5 × MeterValues and a Heartbeat back to back (each call after the previous answer, as OCPP-J requires).

Prints connections held, messages/s, p50/p99 latency per action, the storm's calls/s and drops, and the
server's peak RSS (VmHWM). Also measures the per-message cost of the ``ocpp`` library's schema validation
(thread pool) against ours, to show where the time goes.

    .venv/bin/python benchmarks/csms_load.py --chargers 2000 --rate 500 --steady-s 30
    .venv/bin/python benchmarks/csms_load.py --chargers 10000 --rate 1000 --steady-s 30 --workers 2
    npm install --prefix benchmarks/node_csms      # once: the reference central system (ocpp-rpc)
    .venv/bin/python benchmarks/csms_load.py --chargers 2000 --server node
    .venv/bin/python benchmarks/csms_load.py --chargers 2000 --server floor [--uvloop]   # the stack's floor
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import random
import re
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TS = "2026-03-02T08:00:00Z"


def _frame(text: str) -> bytes:
    """A client text frame, masked with the all-zero key (legal, and the payload needs no XOR)."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + data


def _call(uid: str, action: str, payload: dict[str, Any]) -> bytes:
    return _frame(json.dumps([2, uid, action, payload], separators=(",", ":")))


METER = {
    "connectorId": 1,
    "transactionId": 1,
    "meterValue": [
        {
            "timestamp": TS,
            "sampledValue": [
                {"value": "12345", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": "31.2", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                {"value": "57", "measurand": "SoC", "unit": "Percent"},
            ],
        }
    ],
}
FRAMES = {
    "BootNotification": _call("b", "BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "Load-1"}),
    "StatusNotification": _call(
        "s", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
    ),
    "MeterValues": _call("m", "MeterValues", METER),
    "Heartbeat": _call("h", "Heartbeat", {}),
}  # fmt: skip
ANSWERS = {
    "GetConfiguration": {
        "configurationKey": [
            {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "3"},
            {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": "24"},
        ],
        "unknownKey": ["ChargingScheduleAllowedChargingRateUnit", "MaxChargingProfilesInstalled", "NumberOfConnectors"],
    },
    "ChangeConfiguration": {"status": "Accepted"},
    # Load management (on unless --no-load-management): limits accepted, the read-back refused (as many do).
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "GetCompositeSchedule": {"status": "Rejected"},
}
STORM = ["BootNotification", "StatusNotification", *["MeterValues"] * 5, "Heartbeat"]


class RawChargePoint(asyncio.Protocol):
    """A minimal OCPP-J client: handshake, unmasked server frames in, one outstanding CALL at a time."""

    def __init__(self, cp_id: str, host: str, port: int, stats: Stats) -> None:
        self.cp_id, self.host, self.port, self.stats = cp_id, host, port, stats
        self.buf = bytearray()
        self.upgraded = False
        self.open = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.answer: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /ocpp/{self.cp_id} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.open, self.answer, self.closed):
            if fut is not None and not fut.done():
                fut.set_result(b"") if fut is not self.open else fut.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                return
            self.upgraded = True
            self.open.set_result(None)
        buf = self.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1] & 0x7F
            pos = 2
            if b1 == 126:
                if len(buf) < 4:
                    return
                (b1,) = struct.unpack_from("!H", buf, 2)
                pos = 4
            elif b1 == 127:
                if len(buf) < 10:
                    return
                (b1,) = struct.unpack_from("!Q", buf, 2)
                pos = 10
            if len(buf) < pos + b1:
                return
            payload = bytes(buf[pos : pos + b1])
            del buf[: pos + b1]
            opcode = b0 & 0x0F
            if opcode == 1:
                self.on_message(payload)
            elif opcode == 9:  # ping → pong
                self.transport.write(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\x00\x00\x00\x00" + payload)
            elif opcode == 8:
                self.transport.close()

    def on_message(self, payload: bytes) -> None:
        if payload.startswith(b"[2"):
            msg = json.loads(payload)
            answer = ANSWERS.get(msg[2], {})
            self.transport.write(_frame(json.dumps([3, msg[1], answer], separators=(",", ":"))))
            self.stats.server_calls += 1
        elif self.answer is not None and not self.answer.done():
            self.answer.set_result(payload)

    async def call(self, action: str) -> bool:
        """Send a pre-built CALL, wait for its answer, record the latency; False on CALLERROR or close."""
        self.answer = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        self.transport.write(FRAMES[action])
        reply = await self.answer
        ok = reply.startswith(b"[3")
        self.stats.record(action, time.perf_counter() - t0, ok)
        return ok


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors = 0
        self.server_calls = 0

    def record(self, action: str, seconds: float, ok: bool) -> None:
        self.latency[action].append(seconds)
        if not ok:
            self.errors += 1

    def reset(self) -> None:
        self.latency.clear()
        self.errors = 0


async def _connect(cp_id: str, host: str, port: int, stats: Stats) -> RawChargePoint | None:
    loop = asyncio.get_running_loop()
    try:
        _, proto = await loop.create_connection(lambda: RawChargePoint(cp_id, host, port, stats), host, port)
        await asyncio.wait_for(proto.open, 30)
        return proto
    except (OSError, ConnectionError, TimeoutError):
        stats.errors += 1
        return None


async def worker_main(
    ids: list[str], host: str, port: int, rate_per_cp: float, steady_s: float, server_pid: int, out: Any
) -> None:
    stats = Stats()
    # Phase 1: connect and boot, all at once (a first-boot storm: evsite probes every charger it does not know).
    first_t0 = time.time()
    cps = [cp for cp in await asyncio.gather(*(_connect(i, host, port, stats) for i in ids)) if cp]

    async def boot(cp: RawChargePoint) -> None:
        await cp.call("BootNotification")
        await cp.call("StatusNotification")

    await asyncio.gather(*(boot(cp) for cp in cps))
    first_boot = (first_t0, time.time(), sum(len(v) for v in stats.latency.values()))
    # The central system answers each first boot with GetConfiguration and ChangeConfiguration calls, and load
    # management then sends every charger its fail-safe and first limits (and reads them back): tens of
    # thousands of calls in all. Wait until they have stopped arriving (2 s without one, once the three probe
    # calls per charger are in), so the steady phase measures the steady state, not the tail of the boot burst.
    # A central system that sends none (the Node.js reference) is taken as settled after 10 s of silence.
    boot_t0 = time.perf_counter()
    last, quiet_since = -1, time.perf_counter()
    while time.perf_counter() - boot_t0 < 180.0:
        await asyncio.sleep(0.25)
        if stats.server_calls != last:
            last, quiet_since = stats.server_calls, time.perf_counter()
            continue
        quiet = time.perf_counter() - quiet_since
        if quiet >= 10.0 or (quiet >= 2.0 and stats.server_calls >= 3 * len(cps)):
            break
    boot_settle_s = quiet_since - boot_t0
    held = sum(1 for cp in cps if not cp.transport.is_closing())
    boot_server_calls = stats.server_calls
    stats.reset()
    # Phase 2: steady MeterValues.
    period = 1.0 / rate_per_cp
    t_end = time.perf_counter() + steady_s

    async def steady(cp: RawChargePoint) -> None:
        nxt = time.perf_counter() + random.uniform(0, period)  # spread evenly over the period
        while nxt < t_end:
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
            if not await cp.call("MeterValues"):
                return
            nxt += period

    t0 = time.perf_counter()
    await asyncio.gather(*(steady(cp) for cp in cps))
    steady_wall = time.perf_counter() - t0
    steady_lat = dict(stats.latency)
    steady_errors = stats.errors
    held_after = sum(1 for cp in cps if not cp.transport.is_closing())
    # Phase 3: drop everything, then reconnect all at once.
    for cp in cps:
        cp.transport.abort()
    await asyncio.sleep(1.0)
    stats.reset()

    opened: list[float] = []
    finished: list[float] = []

    async def storm(cp_id: str) -> int:
        cp = await _connect(cp_id, host, port, stats)
        if cp is None:
            return 0
        opened.append(time.time() - s0)
        done = 0
        for action in STORM:
            if not await cp.call(action):
                break
            done += 1
        finished.append(time.time() - s0)
        return done

    srv0, me0, wait0 = _cpu_s(server_pid), time.process_time(), _runqueue_wait_s(server_pid)
    s0 = time.time()
    done = await asyncio.gather(*(storm(i) for i in ids))
    s1 = time.time()
    storm_server_calls = stats.server_calls - boot_server_calls
    srv_cpu, my_cpu = _cpu_s(server_pid) - srv0, time.process_time() - me0
    srv_wait = _runqueue_wait_s(server_pid) - wait0
    out.put(
        {
            "held": held,
            "first_boot": first_boot,
            "boot_settle_s": boot_settle_s,
            "server_calls": (boot_server_calls, storm_server_calls),
            "held_after": held_after,
            "steady_wall": steady_wall,
            "steady_lat": steady_lat,
            "steady_errors": steady_errors,
            "storm_lat": dict(stats.latency),
            "storm_calls": sum(done),
            "storm_expected": len(ids) * len(STORM),
            "storm_errors": stats.errors,
            "storm_t": (s0, s1),
            "storm_cpu": (srv_cpu, my_cpu),
            "storm_wait": srv_wait,
            "storm_opened": opened,
            "storm_finished": finished,
        }
    )


def _worker(*args: Any) -> None:
    asyncio.run(worker_main(*args))


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_wait_s(pid: int) -> float:
    """Seconds the main thread (event loop) of ``pid`` was runnable but waiting for a CPU held by another."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def validation_cost(n: int = 2000) -> dict[str, float]:
    """µs per MeterValues request: the ocpp library's validate_payload (thread pool) vs ours (inline)."""
    from ocpp.messages import Call, validate_payload

    from evsite.ocppj.validation import validate

    async def lib() -> float:
        msg = Call("1", "MeterValues", METER)
        await validate_payload(msg, "1.6")
        t0 = time.perf_counter()
        for _ in range(n):
            await validate_payload(msg, "1.6")
        return (time.perf_counter() - t0) / n * 1e6

    validate("MeterValues", "req", METER)
    t0 = time.perf_counter()
    for _ in range(n):
        validate("MeterValues", "req", METER)
    ours = (time.perf_counter() - t0) / n * 1e6
    return {"ocpp library (executor)": asyncio.run(lib()), "evsite (fastjsonschema, inline)": ours}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chargers", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=500.0, help="steady MeterValues per second, all chargers")
    ap.add_argument("--steady-s", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=1, help="load-generator processes")
    ap.add_argument("--profile", metavar="FILE", help="run the server under cProfile, write stats to FILE")
    ap.add_argument("--server", choices=("evsite", "node", "floor"), default="evsite",
                    help="evsite serve; the reference ocpp-rpc central system in benchmarks/node_csms; or the "
                         "floor: the thinnest central system on evsite's stack (benchmarks/floor_csms.py)")  # fmt: skip
    ap.add_argument("--uvloop", action="store_true",
                    help="run evsite serve or the floor on uvloop's event loop (measurement)")  # fmt: skip
    ap.add_argument("--no-load-management", action="store_true",
                    help="[site] enabled = false: the central system alone (as the Node.js reference)")  # fmt: skip
    args = ap.parse_args()

    # 10,000 chargers need 10,000 sockets in the server and as many in the load processes.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.chargers + 1024)), hard))
    tmp = Path(tempfile.mkdtemp(prefix="evsite-bench-"))
    cfg = tmp / "bench.toml"
    cfg.write_text(
        f'[logging]\nlevel = "warning"\n[server]\nhost = "127.0.0.1"\nport = 0\nallow_unknown_chargers = true\n'
        f'[store]\nurl = "sqlite:///{tmp / "bench.db"}"\n'
        f"[site]\nenabled = {'false' if args.no_load_management else 'true'}\n"
    )
    if args.server == "node":
        node_dir = REPO / "benchmarks" / "node_csms"
        if not (node_dir / "node_modules" / "ocpp-rpc").exists():
            print(f"first: npm install --prefix {node_dir}", file=sys.stderr)
            return 1
        cmd = ["node", str(node_dir / "server.js"), "127.0.0.1", "0"]
    elif args.server == "floor":
        cmd = [sys.executable, str(REPO / "benchmarks" / "floor_csms.py"), "127.0.0.1", "0"]
        cmd += ["--uvloop"] if args.uvloop else []
    else:
        cmd = [sys.executable]
        if args.profile:
            cmd += ["-m", "cProfile", "-o", args.profile]
        if args.uvloop:  # measurement only: the event loop swapped under an unchanged `evsite serve`
            cmd += ["-c", "import sys, uvloop; uvloop.install(); from evsite.cli import main; sys.exit(main())"]
        else:
            cmd += ["-m", "evsite"]
        cmd += ["serve", "--config", str(cfg)]
    log = tmp / "server.log"
    with log.open("w") as err:  # a file, not a pipe: a pipe nobody reads would stall the server when full
        server = subprocess.Popen(cmd, cwd=REPO, stderr=err, text=True)
    port = None
    deadline = time.monotonic() + 60
    while port is None and time.monotonic() < deadline and server.poll() is None:
        m = re.search(r"listening on ws://[^:]+:(\d+)/", log.read_text())
        port = int(m.group(1)) if m else None
        time.sleep(0.05)
    if port is None:
        print("server did not start:\n" + log.read_text(), file=sys.stderr)
        return 1
    ids = [f"BENCH-{i:05d}" for i in range(args.chargers)]
    out: mp.Queue[dict[str, Any]] = mp.Queue()
    shares = [ids[w :: args.workers] for w in range(args.workers)]
    rate_per_cp = args.rate / args.chargers
    procs = [
        mp.Process(target=_worker, args=(share, "127.0.0.1", port, rate_per_cp, args.steady_s, server.pid, out))
        for share in shares
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    rss = _peak_rss_mb(server.pid)
    server.send_signal(2)
    try:
        server.wait(timeout=60)
        stopped = f"server stopped after SIGINT (exit {server.returncode})"
    except subprocess.TimeoutExpired:
        server.kill()
        stopped = "server did NOT stop within 60 s of SIGINT: killed"

    def merged(key: str) -> dict[str, list[float]]:
        acc: dict[str, list[float]] = defaultdict(list)
        for r in results:
            for k, v in r[key].items():
                acc[k].extend(v)
        return acc

    steady = merged("steady_lat")
    n_steady = sum(len(v) for v in steady.values())
    wall = max(r["steady_wall"] for r in results)
    loop_name = " (uvloop)" if args.uvloop and args.server != "node" else ""
    print(f"server: {args.server}{loop_name}  chargers: {args.chargers}  load processes: {args.workers}  "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"connections held: {sum(r['held'] for r in results)} after boot, "
          f"{sum(r['held_after'] for r in results)} after the steady phase")  # fmt: skip
    print(f"steady: {n_steady} MeterValues in {wall:.1f} s = {n_steady / wall:.0f} msg/s, "
          f"errors {sum(r['steady_errors'] for r in results)}")  # fmt: skip
    for action, lat in sorted(steady.items()):
        print(f"  {action:20s} n={len(lat):6d}  p50 {_pct(lat, 0.5):7.1f} ms  p99 {_pct(lat, 0.99):7.1f} ms")
    f0 = min(r["first_boot"][0] for r in results)
    f1 = max(r["first_boot"][1] for r in results)
    fn = sum(r["first_boot"][2] for r in results)
    print(f"first-boot storm: {fn} Boot+Status answered in {f1 - f0:.2f} s from the first connect = "
          f"{fn / (f1 - f0):.0f} calls/s (connections opened at once)")  # fmt: skip
    boot_calls = sum(r["server_calls"][0] for r in results)
    settle = max(r["boot_settle_s"] for r in results)
    storm_calls = sum(r["server_calls"][1] for r in results)
    print(f"central-system calls answered (capability probe, sampling config, load management): {boot_calls} "
          f"after the first boots (the last {settle:.1f} s after the boots), {storm_calls} in the storm")  # fmt: skip
    storm = merged("storm_lat")
    t0 = min(r["storm_t"][0] for r in results)
    t1 = max(r["storm_t"][1] for r in results)
    calls = sum(r["storm_calls"] for r in results)
    expected = sum(r["storm_expected"] for r in results)
    print(f"storm: {calls}/{expected} calls answered in {t1 - t0:.2f} s = {calls / (t1 - t0):.0f} calls/s, "
          f"dropped {expected - calls}, errors {sum(r['storm_errors'] for r in results)}")  # fmt: skip
    for action, lat in sorted(storm.items()):
        print(f"  {action:20s} n={len(lat):6d}  p50 {_pct(lat, 0.5):7.1f} ms  p99 {_pct(lat, 0.99):7.1f} ms")
    opened = [x for r in results for x in r["storm_opened"]]
    finished = [x for r in results for x in r["storm_finished"]]
    print(f"  connections open after (p50/p99/max) {_pct(opened, 0.5):.0f}/{_pct(opened, 0.99):.0f}/"
          f"{max(opened) * 1000:.0f} ms; chargers done after {_pct(finished, 0.5):.0f}/{_pct(finished, 0.99):.0f}/"
          f"{max(finished) * 1000:.0f} ms")  # fmt: skip
    srv_cpu = results[0]["storm_cpu"][0]
    print(f"storm CPU: server {srv_cpu:.2f} s ({srv_cpu / (t1 - t0):.0%} of one core), "
          f"load generator(s) {sum(r['storm_cpu'][1] for r in results):.2f} s")  # fmt: skip
    print(f"  = {calls / srv_cpu:.0f} calls per server CPU-second (independent of other load on the machine)")
    print(f"  server event loop runnable but waiting for a CPU: {results[0]['storm_wait']:.2f} s")
    print(f"server peak RSS: {rss:.0f} MB; {stopped}")
    for name, us in validation_cost().items():
        print(f"schema validation of one MeterValues, {name}: {us:.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
