"""`evsite serve`: run the OCPP 1.6J central system until SIGINT/SIGTERM.

Flags override the config file's ``[server]`` section; the overrides are validated like the file itself.
Shutdown is clean: connections are closed and every buffered write is committed before the process exits,
so a restart finds all data (the restart test relies on it). Exit status after a clean shutdown: 0 on SIGTERM
(a service manager asking the server to stop: the expected end of its life), 130 on SIGINT (Ctrl-C, like every
other command), with a one-line summary of what the run served.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from evsite.cli.common import EXIT_CONFIG, add_config_arg, load_config_or_exit, resolve_config_path
from evsite.config import Config, ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the OCPP 1.6J central system (ws://host:port/ocpp/<chargePointId>)")
    add_config_arg(p)
    p.add_argument("--host", help="address to bind (overrides server.host)")
    p.add_argument("--port", type=int, help="port to bind, 0 for any free port (overrides server.port)")
    p.add_argument(
        "--allow-unknown-chargers",
        action="store_true",
        help="auto-register unknown charge point ids (test benches only; recorded as auto-registered)",
    )
    p.add_argument("--db", metavar="URL", help="store URL (overrides store.url)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from evsite.log import configure_logging

    config = load_config_or_exit(args.config)
    try:
        config = _with_overrides(config, args)
    except ConfigError as err:
        print(f"evsite: {err}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.logging.level, config.logging.format)
    # The store's writer thread shares the GIL with the event loop: with the default 5 ms switch interval, every
    # socket send (which releases the GIL) could cost the loop up to 5 ms to get it back. 0.5 ms keeps the read
    # loop responsive while the writer commits a batch.
    sys.setswitchinterval(0.0005)
    # Thousands of connections keep hundreds of thousands of objects alive; with the default thresholds the
    # cyclic GC walks them every few hundred allocations. Collect young objects far less often instead.
    import gc

    gc.set_threshold(50_000, 20, 100)
    # A Ctrl-C before the signal handlers are installed (still starting) reaches evsite.cli.main: exit 130.
    return asyncio.run(_serve(config, resolve_config_path(args.config), lambda cfg: _with_overrides(cfg, args)))


def _with_overrides(config: Config, args: argparse.Namespace) -> Config:
    """The config with the command line's flags applied, validated like the file (raises ConfigError)."""
    from evsite.config import parse_config

    data = config.model_dump()
    if args.host is not None:
        data["server"]["host"] = args.host
    if args.port is not None:
        data["server"]["port"] = args.port
    if args.allow_unknown_chargers:
        data["server"]["allow_unknown_chargers"] = True
    if args.db is not None:
        data["store"]["url"] = args.db
    return parse_config(data, "command line")


async def _serve(
    config: Config, config_path: Path | None = None, overrides: Callable[[Config], Config] | None = None
) -> int:
    import asyncio
    import gc
    import logging
    import signal

    from sqlalchemy.exc import SQLAlchemyError

    from controller.runtime import SiteRuntime
    from controller.store import Store
    from evsite.clock import RealClock
    from evsite.log import log_event

    log = logging.getLogger("evsite.serve")
    from controller.store.migrate import upgrade

    try:
        store = Store.open(config.store.url, create=False)
        migrated = upgrade(store.engine)
    except SQLAlchemyError as err:
        print(f"evsite: cannot open the store at store.url: {err.__class__.__name__}: {err}", file=sys.stderr)
        return 1
    log_event(log, "store_migrated", before=migrated.before, after=migrated.after)
    # The watched file is the one read at start; flags override it only until its next valid edit.
    site = SiteRuntime(config, RealClock(), config_path=config_path, store=store, overrides=overrides)
    csms = site.csms
    try:
        csms.tls_context()
    except OSError as err:
        print(f"evsite: server.tls_cert / server.tls_key: cannot load the certificate: {err}", file=sys.stderr)
        store.close()
        return EXIT_CONFIG
    try:
        await site.start()
    except OSError as err:
        where = (config.api.host, config.api.port) if site.api is not None else (config.server.host, config.server.port)
        print(f"evsite: cannot listen on {where[0]}:{where[1]}: {err.strerror}", file=sys.stderr)
        await site.stop()
        store.close()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    got: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda s=sig: (got.append(s), stop.set()))
    gc.freeze()  # everything loaded so far lives until exit: keep it out of every future collection
    lines = [f"evsite serve: listening on {csms.url}<chargePointId>"]
    if site.api is not None:
        lines.append(f"evsite serve: dashboard and API on {site.api.url} (OpenAPI at {site.api.url}docs)")
    # In JSON mode every line on the stream is JSON; logged at the configured level at least, because tools
    # wait for this line even when only warnings are logged.
    level = max(logging.INFO, logging.getLogger().getEffectiveLevel())
    for line in lines:
        if config.logging.format == "json":
            log_event(log, "serve_listening", level, message=line)
        else:
            print(line, file=sys.stderr, flush=True)
    await stop.wait()
    connected = len(csms.connected)
    log_event(log, "shutdown_requested", connected=connected, signal=got[0].name)
    await site.stop()
    store.close()
    if got[0] == signal.SIGINT:
        said = f"interrupted (Ctrl-C); stopped cleanly with {connected} charger(s) connected, writes committed"
        if config.logging.format == "json":  # every line on the stream stays JSON
            log_event(log, "serve_interrupted", logging.WARNING, message=said)
        else:
            print(f"evsite serve: {said}", file=sys.stderr)
        return 130
    return 0
