"""Authentication under load, against a real `evsite serve` over wss:// with HTTP Basic (security profile 2).

Every charger has its own password hashed at the production cost (PBKDF2-SHA256, 200,000 iterations:
~136 ms per verification on the project's machine). Each phase starts a fresh server process, so nothing is
cached (a cold restart):

1. **storm**: ``--chargers`` chargers open their connections at once, each with a 30 s open timeout (goal:
   all succeed); reports successes, connect-time p50/p99/max and the server's CPU;
2. **baseline**: one real charger logs in alone (TLS + one verification);
3. **flood**: the same login while ``--flood`` wrong-password handshakes for its id are kept in flight from
   another loopback address (127.0.0.2, its own process), each with a new password; the difference with 2 is
   the delay a flood adds (goal: under 1 s).

    .venv/bin/python benchmarks/auth_storm.py --chargers 200
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evsite.passwords import hash_password  # noqa: E402


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a self-signed test certificate on loopback
    return ctx


def _write_site(tmp: Path, chargers: int) -> Path:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    ids = [f"CP{i:04d}" for i in range(chargers)] + ["CP-REAL"]
    with mp.Pool(2) as pool:
        hashes = pool.map(hash_password, [f"pw-{cp}" for cp in ids])
    lines = [
        '[logging]\nlevel = "warning"\n[server]\nport = 0\nrequire_auth = true',
        f'tls_cert = "{tmp / "cert.pem"}"\ntls_key = "{tmp / "key.pem"}"',
        f'[store]\nurl = "sqlite:///{tmp / "site.db"}"',
    ]
    lines += [f'[[chargers]]\nid = "{cp}"\npassword_hash = "{h}"' for cp, h in zip(ids, hashes, strict=True)]
    cfg = tmp / "site.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


@contextmanager
def _server(cfg: Path) -> Iterator[tuple[str, int]]:
    log = cfg.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "evsite", "serve", "--config", str(cfg)], stderr=out, cwd=REPO)
    try:
        url = None
        while url is None:
            m = re.search(r"listening on (wss://\S+/ocpp/)", log.read_text())
            url = m.group(1) if m else None
            if proc.poll() is not None:
                raise SystemExit(log.read_text())
            time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FAILURES: dict[str, int] = {}


async def _login(url: str, cp_id: str, password: str, timeout_s: float, source: str = "127.0.0.1") -> float | None:
    """Seconds to an open, authenticated connection (None: refused or timed out; counted in FAILURES)."""
    t0 = time.perf_counter()
    try:
        async with connect(url + cp_id, subprotocols=["ocpp1.6"], additional_headers=_auth(cp_id, password),
                           ssl=_client_tls(), open_timeout=timeout_s, local_addr=(source, 0)):  # fmt: skip
            return time.perf_counter() - t0
    except (InvalidHandshake, TimeoutError, OSError) as err:
        why = f"HTTP {err.response.status_code}" if isinstance(err, InvalidStatus) else type(err).__name__
        FAILURES[why] = FAILURES.get(why, 0) + 1
        return None


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def storm(url: str, chargers: int) -> list[float | None]:
    return await asyncio.gather(*(_login(url, f"CP{i:04d}", f"pw-CP{i:04d}", 30.0) for i in range(chargers)))


async def _flood(url: str, concurrency: int, seconds: float, started: Any) -> dict[int, int]:
    """``concurrency`` handshakes always in flight, each with a new wrong password for CP-REAL, from 127.0.0.2,
    for ``seconds``; ``started`` is set once 50 of them have been answered."""
    codes: dict[int, int] = {}
    end = time.monotonic() + seconds

    async def worker(k: int) -> None:
        i = 0
        while time.monotonic() < end:
            i += 1
            try:
                async with connect(url + "CP-REAL", subprotocols=["ocpp1.6"], ssl=_client_tls(), open_timeout=30,
                                   additional_headers=_auth("CP-REAL", f"guess-{k}-{i}"),
                                   local_addr=("127.0.0.2", 0)):  # fmt: skip
                    code = 101
            except InvalidStatus as err:
                code = err.response.status_code
            except (InvalidHandshake, TimeoutError, OSError):
                code = 0
            codes[code] = codes.get(code, 0) + 1
            if sum(codes.values()) >= 50:
                started.set()

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return codes


def _flood_process(url: str, concurrency: int, seconds: float, started: Any, out: Any) -> None:
    out.put(asyncio.run(_flood(url, concurrency, seconds, started)))


def flooded_login(url: str, concurrency: int, seconds: float = 20.0) -> tuple[float | None, dict[int, int]]:
    """The real charger's login time once the flood is answered steadily (flood in its own process)."""
    out: Any = mp.Queue()
    started: Any = mp.Event()
    flood = mp.Process(target=_flood_process, args=(url, concurrency, seconds, started, out))
    flood.start()
    if not started.wait(seconds):
        raise SystemExit("the flood never got going")
    took = asyncio.run(_login(url, "CP-REAL", "pw-CP-REAL", 30.0))
    codes = out.get(timeout=120)
    flood.join()
    return took, codes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chargers", type=int, default=200)
    ap.add_argument("--flood", type=int, default=50, help="wrong-password handshakes kept in flight")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        cfg = _write_site(tmp, args.chargers)
        print(f"hashed {args.chargers + 1} passwords in {time.perf_counter() - t0:.1f} s (setup)")

        with _server(cfg) as (url, pid):
            cpu0, t0 = _cpu_s(pid), time.perf_counter()
            times = asyncio.run(storm(url, args.chargers))
            wall, cpu = time.perf_counter() - t0, _cpu_s(pid) - cpu0
        ok = [t for t in times if t is not None]
        print(f"storm: {len(ok)}/{args.chargers} logged in within the 30 s open timeout; connect p50 "
              f"{_pct(ok, 0.5):.2f} s, p99 {_pct(ok, 0.99):.2f} s, max {max(ok, default=float('nan')):.2f} s; "
              f"wall {wall:.1f} s, server CPU {cpu:.1f} s; failures {FAILURES}")  # fmt: skip

        with _server(cfg) as (url, _pid):
            base = asyncio.run(_login(url, "CP-REAL", "pw-CP-REAL", 30.0))
        with _server(cfg) as (url, _pid):
            flooded, codes = flooded_login(url, args.flood)
            sent = sum(codes.values())
        log = cfg.with_suffix(".log").read_text()
        print({w: log.count(w) for w in ("auth_failed", "auth_backoff", "auth_busy", "127.0.0.2")})
        print(f"baseline login (cold): {base:.3f} s" if base is not None else "baseline login failed")
        if flooded is None or base is None:
            print(f"login during the flood FAILED ({sent} flood handshakes, answers {codes})")
            return 1
        print(f"login during a flood of {sent} wrong-password handshakes from 127.0.0.2: {flooded:.3f} s "
              f"(+{flooded - base:.3f} s); flood answers by HTTP status: {dict(sorted(codes.items()))}")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
