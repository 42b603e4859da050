"""Serve the API with uvicorn on the site's own event loop (no thread, no second process).

Why a subclass: ``uvicorn.Server.serve`` installs its own SIGINT/SIGTERM handlers; ``evsite serve`` already
owns those and stops the API with the rest of the site, so this server captures no signals. The socket is bound
here (port 0 allowed; ``port`` tells the real one) so a busy port fails ``start()`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from controller.api.app import create_app
from controller.api.context import ApiContext
from evsite.log import log_event

log = logging.getLogger("controller.api")


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """``await start()`` binds and serves; ``await stop()`` closes. ``url`` is where the dashboard is."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.app = create_app(ctx)
        self.port: int | None = None
        self._server: _InLoopServer | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def tls(self) -> bool:
        srv = self.ctx.config().server
        return srv.tls_cert is not None and srv.tls_key is not None

    @property
    def url(self) -> str:
        host = self.ctx.config().api.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    async def start(self) -> None:
        cfg = self.ctx.config()
        family = socket.AF_INET6 if ":" in cfg.api.host else socket.AF_INET
        # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on every accepted connection (it checks the proto);
        # without it a kept-alive client waits ~40 ms per answer for a delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((cfg.api.host, cfg.api.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        srv = cfg.server
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=str(srv.tls_cert) if srv.tls_cert else None,
            ssl_keyfile=str(srv.tls_key) if srv.tls_key else None,
        )
        self._server = _InLoopServer(config)
        metrics = self.ctx.extra["metrics"]
        self._tasks = [
            asyncio.create_task(self._server.serve(sockets=[sock]), name="api-http"),
            asyncio.create_task(self.ctx.live.run(), name="api-live-site"),
            asyncio.create_task(metrics.follow(), name="api-metrics"),  # type: ignore[attr-defined]
        ]
        while not self._server.started:
            if self._tasks[0].done():
                self._tasks[0].result()  # raises why uvicorn could not start
                raise RuntimeError("the API server stopped during start-up")
            await asyncio.sleep(0.01)
        log_event(log, "api_listening", url=self.url, tokens=len(cfg.api.tokens))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        http, *others = self._tasks or [None]
        for t in others:
            t.cancel()
        if http is not None:
            await asyncio.gather(http, *others, return_exceptions=True)
        self._tasks = []
