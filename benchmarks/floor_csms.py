"""The thinnest OCPP 1.6J central system on evsite's stack, for `csms_load.py --server floor`.

Why it exists: issue 8 asks evsite for 1.5x the calls/s of the Node.js ocpp-rpc reference. Whether that is
reachable at all with the libraries evsite must use (``websockets``' asyncio server on asyncio) is a question
about the stack, not about evsite's code. This server is that stack with nothing on top: the same
``websockets.asyncio.server.serve`` settings as ``controller.csms`` (subprotocol, no compression, backlog 4096,
server header) and the same garbage-collector settings as ``evsite serve``; each CALL parsed with orjson and
answered with a fixed, valid CALLRESULT for its action. It validates nothing, stores nothing, probes nothing,
logs nothing and sends no calls of its own: a central system on this stack that does any of that needs at
least this much CPU per call.

    python benchmarks/floor_csms.py HOST PORT [--uvloop]

Prints ``listening on ws://HOST:PORT/ocpp/`` on stderr, as ``evsite serve`` does. ``--uvloop`` runs it on
uvloop's event loop instead of asyncio's, to see whether the event loop is the limit (measurement only).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

# Fixed payloads, valid against the OCPP 1.6 response schemas (the timestamp is a constant, not the clock:
# the floor must not even format a date per call).
ANSWERS: dict[str, bytes] = {
    "BootNotification": b'{"status":"Accepted","currentTime":"2026-03-02T08:00:00Z","interval":300}',
    "StatusNotification": b"{}",
    "MeterValues": b"{}",
    "Heartbeat": b'{"currentTime":"2026-03-02T08:00:00Z"}',
}
NOT_IMPLEMENTED = b'"NotImplemented","",{}'


async def handle(ws: ServerConnection) -> None:
    """Answer every CALL in arrival order; ignore CALLRESULT/CALLERROR (this server sends no calls)."""
    send = ws.send
    try:
        async for raw in ws:
            msg: Any = orjson.loads(raw)
            if msg[0] != 2:
                continue
            uid = orjson.dumps(msg[1])
            answer = ANSWERS.get(msg[2])
            if answer is None:
                frame = b"[4," + uid + b"," + NOT_IMPLEMENTED + b"]"
            else:
                frame = b"[3," + uid + b"," + answer + b"]"
            await send(frame, text=True)
    except ConnectionClosed:
        return


async def main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        handle,
        host,
        port,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        compression=None,
        server_header="evsite",
        backlog=4096,
    ) as server:
        gc.freeze()  # as evsite serve does once started: what is loaded stays out of every collection
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://{host}:{bound}/ocpp/", file=sys.stderr, flush=True)
        await stop.wait()


if __name__ == "__main__":
    argv = sys.argv[1:]
    use_uvloop = "--uvloop" in argv
    # evsite serve's thresholds (see evsite/cli/serve.py): at 10,000 connections the default (700, 10, 10)
    # halved this floor's calls per CPU-second; a floor must not be slower than the product for want of them.
    gc.set_threshold(50_000, 20, 100)
    argv = [a for a in argv if a != "--uvloop"]
    host = argv[0] if argv else "127.0.0.1"
    port = argv[1] if len(argv) > 1 else "0"
    if use_uvloop:
        import uvloop

        uvloop.run(main(host, int(port)))
    else:
        asyncio.run(main(host, int(port)))
