"""`evsite simulate`: many OCPP 1.6J charge points, their EVs and a building meter, on an accelerated clock.

    evsite simulate --url ws://127.0.0.1:9000/ocpp --chargers 200 --connectors 2 --speed 60 --hours 24

Runs against any OCPP 1.6J central system; after ``--hours`` of simulated time it stops cleanly and prints a
summary (chargers, transactions, energy delivered, messages, reconnects). Flags override ``[simulation]``.
With ``--meter`` (or ``[mqtt] enabled``) a building meter is replayed and published over MQTT on
``[mqtt] meter_topic`` (payload: ``controller.meter_bridge``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from evsite.cli.common import EXIT_CONFIG, add_config_arg, load_config_or_exit, refuse_bad_inputs


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="run simulated OCPP 1.6J chargers, EVs and a building meter against a central system",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_config_arg(p)
    p.add_argument("--url", help="central system URL (the charge point id is appended), e.g. ws://127.0.0.1:9000/ocpp")
    p.add_argument("--chargers", type=_positive(int), help="number of charge points")
    p.add_argument("--connectors", type=_positive(int), help="connectors per charge point")
    p.add_argument("--speed", type=_positive(float), help="simulated seconds per real second")
    p.add_argument("--hours", type=_positive(float), help="simulated duration; then stop and print a summary")
    p.add_argument("--seed", type=int, help="random seed (fleet, connector choice, backoff jitter)")
    p.add_argument("--prefix", default="SIM", help="charge point ids are <prefix>0001... (default: %(default)s)")
    p.add_argument("--fleet", choices=("seed", "behaviour", "sessions"), help="EV population (default: seed study)")
    p.add_argument("--sessions-csv", help="ACN-Data session CSV for --fleet sessions")
    p.add_argument("--evs", type=_positive(int), help="number of EVs (default: one per connector)")
    p.add_argument("--id-tag", help="idTag the simulated drivers present")
    p.add_argument("--password", help="HTTP Basic password for every charger (security profile 1)")
    p.add_argument("--meter", action="store_true", help="publish a building meter over MQTT ([mqtt] section)")
    p.add_argument("--meter-csv", help="meter CSV to replay (default: a synthetic office week)")
    p.add_argument("--meter-column", help="load column in --meter-csv")
    q = p.add_argument_group("charger capabilities and quirks")
    q.add_argument("--max-stack-level", type=int, help="ChargeProfileMaxStackLevel (default 8)")
    q.add_argument("--units", choices=("A", "W", "AW"), help="ChargingScheduleAllowedChargingRateUnit")
    q.add_argument("--max-periods", type=_positive(int), help="ChargingScheduleMaxPeriods (default 24)")
    q.add_argument("--only-stack-level-0", action="store_true", help="reject every stackLevel but 0")
    q.add_argument("--reject-charge-point-max", action="store_true", help="reject ChargePointMaxProfile")
    q.add_argument("--no-smart-charging", action="store_true", help="answer NotSupported to smart charging")
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write the ground truth (total load against continuous_load_factor x rating) as JSON to FILE",
    )
    p.add_argument("--report-series", action="store_true", help="include the per-step series in --report")
    f = p.add_argument_group("fault injection")
    f.add_argument(
        "--drop-every-s",
        type=_positive(float),
        help="every N simulated seconds, drop one random charger's connection",
    )
    f.add_argument("--reject-profiles", action="store_true", help="every charger answers Rejected to profiles")
    f.add_argument(
        "--answer-delay-s", type=_positive(float), help="chargers answer the central system N simulated s late"
    )
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """``[simulation]`` with the command-line overrides applied, validated like the file."""
    from evsite.config import ConfigError, parse_config

    config = load_config_or_exit(args.config)
    data = config.model_dump()
    sim = data["simulation"]
    for key in ("url", "chargers", "connectors", "speed", "hours", "seed", "fleet", "sessions_csv", "id_tag"):
        value = getattr(args, key, None)
        if value is not None:
            sim[key] = value
    if args.meter_csv is not None:
        sim["meter_csv"] = args.meter_csv
    if args.meter_column is not None:
        sim["meter_column"] = args.meter_column
    try:
        config = parse_config(data, "command line")
    except ConfigError as err:
        print(f"evsite: {err}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    return {"config": config}


def run(args: argparse.Namespace) -> int:
    import asyncio

    from evsite.log import configure_logging

    config = _settings(args)["config"]
    configure_logging(config.logging.level, config.logging.format)
    ran: dict[str, Any] = {}
    try:
        code = asyncio.run(_simulate(args, config, ran))
    except KeyboardInterrupt:
        print("evsite simulate: interrupted (Ctrl-C) before the simulation started", file=sys.stderr)
        code = 130
    site = ran.get("site")
    if site is not None and site.ground_truth is not None:
        code = _ground_truth(args, config, site) or code
    return code


def _ground_truth(args: argparse.Namespace, config: Any, site: Any) -> int:
    """Print (and with --report write) what really happened; the last line is ``violations: N``."""
    import json
    from pathlib import Path

    gt = site.ground_truth
    gt.finish()
    requested, delivered, sessions, served = site.sessions_outcome()
    doc = gt.report(requested, delivered, sessions, served, config.simulation.speed, with_series=args.report_series)
    code = 0
    if args.report:
        try:
            Path(args.report).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        except OSError as err:
            print(f"evsite simulate: cannot write {args.report}: {err}", file=sys.stderr)
            code = 1
    building = "building meter replayed" if site.meter is not None else "no building meter (EV load only)"
    print(
        f"ground truth at {config.simulation.speed:g}x ({building}): limit {doc['limit_kw']:.1f} kW "
        f"(continuous_load_factor x rating), peak {doc['peak_kw']:.1f} kW, {doc['seconds_over']:.0f} s over "
        f"(max {doc['max_excess_kw']:.1f} kW), allowed response {doc['response_s']:g} s; "
        f"energy {doc['energy_delivered_kwh']:.1f} of {doc['energy_requested_kwh']:.1f} kWh requested, "
        f"{doc['sessions_served']}/{doc['sessions']} sessions served"
    )
    print(f"violations: {doc['violations']}")
    return code


def _url(config: Any) -> str:
    sim, srv = config.simulation, config.server
    if sim.url:
        return sim.url.rstrip("/")
    host = "127.0.0.1" if srv.host in ("0.0.0.0", "::") else srv.host
    return f"ws://{host}:{srv.port}{srv.path_prefix}".rstrip("/")


async def _reachable(url: str) -> str | None:
    """Why the central system cannot be reached (None when a TCP connection opens)."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return f"not a ws:// or wss:// URL: {url!r}"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), 5.0)
    except (OSError, TimeoutError) as err:
        return f"no central system at {parts.hostname}:{port} ({err.__class__.__name__}: {err})"
    writer.close()
    return None


async def _why_not_found(url: str, cp_id: str) -> str:
    """Tell a wrong URL path from unknown ids: ask once more and read the central system's 404 text."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        async with connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"], open_timeout=5):
            return "the central system accepts the ids now: try again"
    except InvalidStatus as err:
        said = (err.response.body or b"").decode("utf-8", "replace").strip()
    except (OSError, TimeoutError) as err:
        return f"the central system is no longer reachable: {err}"
    if said == "unknown id":
        return "unknown charge point ids: list them in [[chargers]] or allow_unknown_chargers"
    path = url.split("/", 3)[3] if url.count("/") >= 3 else ""
    return (
        f"the URL path /{path}/<id> was refused (the server said: {said or 'HTTP 404'}): the path is wrong; "
        "fix [simulation] url / --url or [server] path_prefix"
    )


async def _run_until_done_or_interrupted(site: Any, hours: float) -> Any:
    """``site.run(hours)``; on Ctrl-C stop the chargers cleanly, print the partial summary and return None."""
    import asyncio
    import signal
    import time

    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    # Said only once Ctrl-C is ours: a Ctrl-C right after this line still gets the summary.
    online = sum(cp.online.is_set() for cp in site.chargers)
    print(f"evsite simulate: {online} of {len(site.chargers)} chargers online; simulating "
          "(Ctrl-C stops with the summary so far)", file=sys.stderr, flush=True)  # fmt: skip
    runner = asyncio.create_task(site.run(hours))
    waiter = asyncio.create_task(interrupted.wait())
    reporter = asyncio.create_task(_progress(site, hours))
    try:
        await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        waiter.cancel()
        reporter.cancel()
    if runner.done():
        return runner.result()
    summary = site.summary()
    runner.cancel()  # its clean-up stops every charger
    await asyncio.gather(runner, return_exceptions=True)
    summary.wall_s = time.perf_counter() - started
    print("evsite simulate: interrupted (Ctrl-C); summary so far:", file=sys.stderr)
    print(summary.format())
    return None


async def _progress(site: Any, hours: float, min_wall_s: float = 10.0) -> None:
    """A line on stderr per simulated hour (at most one per ``min_wall_s`` of real time), terminal or not."""
    import time

    clock, start, last = site.clock, site.clock.monotonic(), 0.0
    while True:
        await clock.sleep(3600.0)
        if time.monotonic() - last < min_wall_s:
            continue
        last = time.monotonic()
        s = site.summary()
        print(f"evsite simulate: {(clock.monotonic() - start) / 3600:.0f}/{hours:g} h simulated; "
              f"{s.chargers_online} of {s.chargers} chargers online; {s.transactions_started} transactions started; "
              f"{s.energy_kwh:.1f} kWh delivered", file=sys.stderr, flush=True)  # fmt: skip


async def _simulate(args: argparse.Namespace, config: Any, ran: dict[str, Any]) -> int:
    import asyncio
    import random

    from evsite.clock import ScaledClock
    from evsite.ev_fleet import FleetDataError, behaviour_fleet, replay_sessions, seed_fleet
    from simulators.ground_truth import GroundTruth
    from simulators.meter import BuildingMeter, MeterDataError, MqttMeterPublisher, load_meter_csv, synthetic_series
    from simulators.site import SimulatedSite, charger_specs
    from simulators.smart_charging import Capabilities

    sim = config.simulation
    refused = refuse_bad_inputs("simulate", (sim.meter_csv, "meter", False), (sim.sessions_csv, "sessions", False))
    if refused is not None:
        return refused
    url = _url(config)
    why = await _reachable(url)
    if why is not None:
        print(f"evsite simulate: {why}", file=sys.stderr)
        return 1
    n_connectors = sim.chargers * sim.connectors
    n_evs = args.evs or n_connectors
    try:
        if sim.fleet == "behaviour":
            fleet = behaviour_fleet(n_evs, sim.seed)
        elif sim.fleet == "sessions":
            if sim.sessions_csv is None:
                print("evsite simulate: --fleet sessions needs --sessions-csv", file=sys.stderr)
                return EXIT_CONFIG
            fleet = replay_sessions(sim.sessions_csv)
        else:
            fleet = seed_fleet(n_evs, sim.seed)
    except FleetDataError as err:
        print(f"evsite simulate: {err}", file=sys.stderr)
        return 1
    clock = ScaledClock(sim.speed, start=fleet.epoch) if fleet.epoch is not None else ScaledClock(sim.speed)

    caps = Capabilities(
        max_stack_level=args.max_stack_level if args.max_stack_level is not None else 8,
        allowed_units=tuple(args.units) if args.units else ("A", "W"),  # type: ignore[arg-type]
        max_periods=args.max_periods or 24,
        only_stack_level_0=args.only_stack_level_0,
        reject_charge_point_max=args.reject_charge_point_max,
        smart_charging=not args.no_smart_charging,
    )
    specs = charger_specs(
        sim.chargers,
        sim.connectors,
        args.prefix,
        voltage_v=sim.voltage_v,
        phases=sim.phases,
        max_current_a=sim.max_current_a,
        capabilities=caps,
        meter_interval_s=sim.meter_interval_s,
        password=args.password,
    )
    site = SimulatedSite(url, clock, specs, fleet, id_tags=[sim.id_tag], step_s=sim.step_s, seed=sim.seed)
    svc = config.service
    site.ground_truth = GroundTruth(
        svc.rating_kw * svc.continuous_load_factor, config.site.response_s, keep_series=args.report_series
    )
    for cp in site.chargers:
        cp.faults.reject_profiles = args.reject_profiles
        cp.faults.answer_delay_s = args.answer_delay_s or 0.0
    print(
        f"evsite simulate: {sim.chargers} chargers x {sim.connectors} connectors, {len(fleet)} EVs ({sim.fleet}), "
        f"{sim.hours:g} h at {sim.speed:g}x -> {url}/<id>",
        file=sys.stderr,
    )

    publisher = None
    if args.meter or config.mqtt.enabled:
        try:
            series = (
                load_meter_csv(sim.meter_csv, sim.meter_column or "")
                if sim.meter_csv
                else synthetic_series(seed=sim.seed)
            )
        except MeterDataError as err:
            print(f"evsite simulate: {err}", file=sys.stderr)
            return 1
        site.meter = BuildingMeter(series, clock, interval_s=10.0)
        publisher = MqttMeterPublisher(config.mqtt.host, config.mqtt.port, config.mqtt.meter_topic)

    async def drop_faults() -> None:
        rng = random.Random(sim.seed)
        while True:
            await clock.sleep(args.drop_every_s)
            await rng.choice(site.chargers).drop_connection()

    extra: list[asyncio.Task[None]] = []
    try:
        if publisher is not None:
            try:
                await publisher.__aenter__()
            except Exception as err:  # aiomqtt.MqttError and OSError: broker not reachable
                print(
                    f"evsite simulate: cannot reach the MQTT broker at {publisher.host}:{publisher.port}: {err}",
                    file=sys.stderr,
                )
                return 1
            site.meter_publish = publisher
        if args.drop_every_s:
            extra.append(asyncio.create_task(drop_faults()))
        await site.start()
        if await site.wait_online(15.0) == 0:
            why = next((cp.last_error for cp in site.chargers if cp.last_error), "no answer to BootNotification")
            print(f"evsite simulate: no charger could connect to {url}: {why}", file=sys.stderr)
            if "404" in why:
                print(f"  ({await _why_not_found(url, site.chargers[0].id)})", file=sys.stderr)
            await site.stop()
            return 1
        ran["site"] = site
        summary = await _run_until_done_or_interrupted(site, sim.hours)
        if summary is None:
            return 130
    finally:
        for t in extra:
            t.cancel()
        if publisher is not None:
            await publisher.__aexit__(None, None, None)
    print(summary.format())
    return 0
