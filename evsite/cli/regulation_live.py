"""The regulation aggregator live in a load-managed site, against the simulated physical world.

Why here: only ``evsite/cli`` may wire the controller and the simulators together. ``run_regulation_replay``
runs ``alms_run.run_alms`` (the real central system, load management and the aggregator in
``controller.runtime.SiteRuntime``, real WebSockets, the building meter over a real MQTT broker) with
``[regulation] enabled``, and replays a RegD file on ``[mqtt] regulation_topic`` from ``signal_at`` (a clock
time), at the signal's own 2 s pace on the accelerated clock. What it returns is measured by the simulator,
not by the controller:

- the site's total load against its limit (``simulators.ground_truth``: violations, peak);
- the fleet's response: per signal sample, the EV load the simulated site drew over the step covering it
  (negative while cars discharge), as a deviation from the base point of the hour's offer (the aggregator's
  ``regulation/capacity``, in force at the sample) per unit of its capacity, in the signal's sign
  (+1 = least consumption); scored by ``planning.pjm_score.score`` at the signal's 2 s;
- the energy each connector fed back (its export register), so discharge is seen where it happened.

For reference, measured in the same run: the aggregator's *commanded* response (the sum of the setpoints it
had sent, sampled every 2 s), scored the same way: the gap between the two scores is what load management's
envelope, the OCPP round trips and the chargers' physics (minimum current, full batteries) cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from evsite.cli.alms_run import AlmsResult, run_alms
from evsite.config import Config
from evsite.ev_fleet import Fleet


@dataclass
class RegulationReplayResult:
    alms: AlmsResult
    signal: np.ndarray  # the samples replayed (per unit)
    response: np.ndarray  # the fleet's measured response at each sample (per unit of the capacity in force)
    ev_kw: np.ndarray  # the EV load measured at each sample (kW, negative = discharge)
    offers: list[Any] = field(default_factory=list)  # ``CapacityOffer``s published during the run
    capacity_kw: float = 0.0  # the capacity in force over the scored samples (the offer of signal_at's hour)
    base_kw: float = 0.0
    exported_kwh: dict[str, float] = field(default_factory=dict)  # per connector "cp/c": energy fed back
    bidirectional: set[str] = field(default_factory=set)  # connectors "cp/c" of bidirectional chargers
    score: Any = None  # ``planning.pjm_score.PerformanceScore`` of the measured response
    commanded: np.ndarray | None = None  # the aggregator's commanded response at each sample (per unit)
    commanded_score: Any = None


async def run_regulation_replay(
    config: Config,
    building: Any,
    fleet: Fleet,
    signal: Any,
    *,
    start: datetime,
    hours: float,
    speed: float,
    signal_at: datetime,
    signal_index: int,
    samples: int,
    replay_from: datetime | None = None,
) -> RegulationReplayResult:
    """Run the site with the aggregator on; replay ``samples`` samples of ``signal`` (a
    ``simulators.regulation_signal.RegulationSignal``) from ``signal_index``, starting at ``signal_at``."""
    from evsite import topics
    from planning.pjm_score import score
    from simulators.regulation_signal import publish_signal

    offers: list[tuple[float, Any]] = []
    commanded: list[tuple[float, float]] = []  # (t_s, kW the aggregator's setpoints add up to)
    held: dict[str, Any] = {}

    def on_started(site: Any, runtime: Any, clock: Any) -> list[Any]:
        held["site"] = site
        sub = runtime.bus.subscribe(topics.REGULATION_CAPACITY)

        async def record_offers() -> None:
            async for _topic, offer in sub:
                offers.append((clock.monotonic() - site._mono0, offer))

        async def replay() -> None:
            await clock.sleep(max((signal_at - clock.now()).total_seconds(), 0.0))
            held["t0"] = clock.monotonic() - site._mono0
            await publish_signal(signal, clock, config.mqtt.host, config.mqtt.port, config.mqtt.regulation_topic,
                                 start_index=signal_index, count=samples)  # fmt: skip

        async def record_commands() -> None:
            while True:
                if runtime.regulation is not None:
                    commanded.append((clock.monotonic() - site._mono0, float(runtime.regulation.tracker.sent_kw.sum())))
                await clock.sleep(2.0)

        return [record_offers(), replay(), record_commands()]

    result = await run_alms(config, building, fleet, hours=hours, speed=speed, start=start, replay_from=replay_from,
                            series=True, on_started=on_started)  # fmt: skip
    site = held["site"]
    if "t0" not in held:
        raise RuntimeError(f"the run ended before the signal replay was due at {signal_at.isoformat()}")
    values = np.asarray(signal.value[signal_index : signal_index + samples], float)
    t_sig = held["t0"] + (signal.offset_s[signal_index : signal_index + samples] - signal.offset_s[signal_index])
    gt = np.array([(t, ev) for t, _b, ev in (r.values() for r in result.report["series"])], float)
    # the site step that ends at or after a sample's time covers it (steps are constant power)
    idx = np.searchsorted(gt[:, 0], t_sig + 1e-6, side="left")
    keep = idx < len(gt)
    values, t_sig, ev_kw = values[keep], t_sig[keep], gt[idx[keep], 1]
    # the hour's offer comes with the aggregator's first step of the hour (2 s; later on a loaded machine, where the
    # accelerated clock lags): the last one within 5 minutes of the start (the next hour's comes 60 minutes later)
    in_force = [o for t, o in offers if t <= held["t0"] + 300.0]
    if not in_force:
        raise RuntimeError("the aggregator published no capacity offer by the start of the replay")
    offer = in_force[-1]
    cap = float(offer.capacity_kw)
    response = (-ev_kw - offer.base_kw) / cap if cap > 0 else np.zeros_like(ev_kw)
    cmd = np.array(commanded, float).reshape(-1, 2)
    j = np.clip(np.searchsorted(cmd[:, 0], t_sig, side="right") - 1, 0, max(len(cmd) - 1, 0))
    cmd_resp = (-cmd[j, 1] - offer.base_kw) / cap if cap > 0 and len(cmd) else np.zeros_like(ev_kw)
    a = site.arrays
    names = [f"{cp.id}/{c}" for cp in site.chargers for c in range(1, cp.spec.connectors + 1)]
    return RegulationReplayResult(
        alms=result,
        signal=values,
        response=response,
        ev_kw=ev_kw,
        offers=[o for _t, o in offers],
        capacity_kw=cap,
        base_kw=float(offer.base_kw),
        exported_kwh={n: float(w) / 1000.0 for n, w in zip(names, a.export_wh, strict=True)},
        bidirectional={
            f"{cp.id}/{c}" for cp in site.chargers if cp.spec.bidirectional for c in range(1, cp.spec.connectors + 1)
        },
        score=score(values, response) if values.size >= 150 else None,
        commanded=cmd_resp,
        commanded_score=score(values, cmd_resp) if values.size >= 150 else None,
    )


def regulation_site_config(
    *,
    chargers: int,
    bidirectional: int,
    port: int,
    db: str,
    topic: str,
    mqtt: tuple[str, int],
    export_limit_kw: float = 10.0,
    max_a: float = 16.0,
    rating_a: float = 125.0,
) -> Config:
    """A site like the ALMS tests' (400 V three-phase service, ``rating_a`` at 80 % continuous: 69.3 kW for
    125 A; building up to 20 kW) with ``chargers`` two-connector chargers of ``max_a`` (11 kW at 16 A), the
    last ``bidirectional`` of them bidirectional, and the aggregator on."""
    from evsite.cli.alms_run import alms_config

    base = {
        "service": {"rating_a": rating_a, "voltage_v": 400, "phases": 3, "continuous_load_factor": 0.8},
        "meter": {"stale_after_s": 30},
        "site": {"profile_validity_s": 120, "period_s": 30, "building_peak_kw": 20.0,
                 "export_limit_kw": export_limit_kw},
        "regulation": {"enabled": True, "step_s": 2.0, "soc_bins": 10, "min_hold_s": 120.0},
    }  # fmt: skip
    cfg = alms_config(base, chargers=chargers, connectors=2, max_a=max_a, port=port, db=db, topic=topic)
    data = cfg.model_dump()
    data["mqtt"].update(host=mqtt[0], port=mqtt[1])
    for ch in data["chargers"][chargers - bidirectional :]:
        ch["bidirectional"] = True
    return type(cfg).model_validate(data)


def parked_fleet(n: int, arrive_s: tuple[float, float], stay_s: float, seed: int = 0, p_kw: float = 11.0) -> Fleet:
    """``n`` cars arriving uniformly within ``arrive_s`` and staying ``stay_s``, at 30-45 % SoC of a 40-75 kWh
    battery wanting 80 % (the target the live aggregator assumes, ``LiveDefaults``: OCPP 1.6 does not carry
    it), so energy assurance leaves room to regulate."""
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(*arrive_s, n))
    soc = rng.uniform(0.3, 0.45, n)
    return Fleet(
        arrival_s=arrival,
        departure_s=arrival + stay_s,
        capacity_kwh=rng.uniform(40.0, 75.0, n),
        p_charge_kw=np.full(n, p_kw),
        p_discharge_kw=np.full(n, p_kw),
        efficiency=np.full(n, 0.92),
        soc=soc,
        soc_target=np.full(n, 0.8),
        mode=np.zeros(n, dtype=np.int8),
    )
