"""How long the operator API takes to answer with many chargers known (issue 11).

Runs ``evsite serve`` in its own process (central system + API, no load management, SQLite store in a temp folder) with
``--chargers`` chargers registered in the store, ``--connectors`` connector rows each and ``--transactions``
closed transactions, then sends ``--requests`` sequential requests per endpoint over a real socket and prints
p50 / p99 / max in ms. The dashboard polls five of these every 2 s.

    .venv/bin/python benchmarks/api_latency.py --chargers 1000 --requests 100
"""

from __future__ import annotations

import argparse
import http.client
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from controller.api.auth import token_digest
from controller.store import Store

ENDPOINTS = ["/api/site", "/api/chargers", "/api/transactions?open=true", "/api/events?limit=15",
             "/api/history?hours=6", "/api/transactions?limit=1000&format=csv", "/metrics"]  # fmt: skip


def seed(store: Store, chargers: int, connectors: int, transactions: int) -> None:
    now = datetime.now(UTC)
    rows = []
    for i in range(chargers):
        cp = f"BENCH{i:05d}"
        store.register_charge_point(cp, now)
        rows += [{"cp_id": cp, "connector_id": c, "status": "Available", "error_code": "NoError", "info": None,
                  "vendor_error_code": None, "updated_at": now} for c in range(1, connectors + 1)]  # fmt: skip
    from controller.store.store import WriteBatch

    batch = WriteBatch()
    batch.connectors = {(r["cp_id"], r["connector_id"]): r for r in rows}
    store.write_batch(batch)
    for k in range(transactions):
        cp = f"BENCH{k % chargers:05d}"
        start = now - timedelta(hours=k % 500)
        tx, _ = store.start_transaction(cp, 1, "TAG", 1000 * k, start, "Accepted")
        store.stop_transaction(cp, tx, 1000 * k + 7000, start + timedelta(hours=1), "EVDisconnected", "TAG")


def timed_gets(base: str, path: str, n: int) -> tuple[list[float], int]:
    """``n`` sequential GETs on one kept-alive connection (stdlib ``http.client``, like a small script would)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    times, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": "Bearer t"})
        resp = conn.getresponse()
        body = resp.read()
        times.append((time.perf_counter() - t) * 1000)
        if resp.status != 200:
            raise SystemExit(f"{path}: HTTP {resp.status}: {body[:200]!r}")
        size = len(body)
    conn.close()
    return sorted(times), size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--connectors", type=int, default=2)
    ap.add_argument("--transactions", type=int, default=5000)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        store = Store.open(f"sqlite:///{db}")
        t0 = time.perf_counter()
        seed(store, args.chargers, args.connectors, args.transactions)
        store.close()
        print(f"seeded {args.chargers} chargers, {args.transactions} transactions in {time.perf_counter() - t0:.1f} s")
        cfg = Path(tmp) / "config.toml"
        token = token_digest("t")
        cfg.write_text(
            f'[server]\nport = 0\n[store]\nurl = "sqlite:///{db}"\n[site]\nenabled = false\n'
            f'[logging]\nlevel = "warning"\n[api]\nenabled = true\nport = 0\n'
            f'[[api.tokens]]\nname = "b"\nsha256 = "{token}"\nrole = "read"\n'
        )
        log = Path(tmp) / "serve.log"
        with log.open("w") as err:  # the API in its own process, as the dashboard and the CLI see it
            proc = subprocess.Popen([sys.executable, "-m", "evsite", "serve", "--config", str(cfg)], stderr=err)
        try:
            while "dashboard and API on" not in log.read_text():
                time.sleep(0.1)
            base = re.search(r"dashboard and API on (http://\S+/) ", log.read_text()).group(1)  # type: ignore[union-attr]
            print(f"{'endpoint':<42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  bytes")
            for path in ENDPOINTS:
                times, size = timed_gets(base, path, args.requests)
                p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
                print(f"{path:<42} {statistics.median(times):8.1f} {p99:8.1f} {times[-1]:8.1f}  {size}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
