"""The demo's report folder: ``report.md`` (every number with what it means and assumes) and PNG plots.

Why a folder and not only the terminal: the demo is a new user's first look, and the tables scroll away; the
report keeps the plan, the day as the central system saw it and the simulator's ground truth side by side, and
says what to try next.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from evsite.cli.demo_run import DemoReport


#: What each headline figure means, printed at the end of the run and written into the report.
MEANINGS: tuple[str, ...] = (
    "chargers without / with load management: how many chargers of the configured rating ([service] "
    "evse_rating_a) the plan fits on the service by NEC "
    "220.87 (all at full power beside the building's peak x 125 %) and by NEC 625.42 (a controller keeps the "
    "total under the limit), at the stated kWh per charger-day",
    "site limit: continuous_load_factor x the service rating; the controller keeps building + EVs under it",
    "violations: runs of simulated seconds above the site limit longer than [site] response_s, counted by the "
    "simulator itself, not by the controller; 0 is the guarantee",
    "energy delivered / requested and sessions fully served: what the cars got within the limit",
)

#: What to try after the demo (terminal and report).
NEXT_STEPS: tuple[str, ...] = (
    "`evsite demo --keep-running`: leave the site up and explore it in the dashboard (the URL and token are "
    "printed while it runs)",
    "`evsite demo --hours 48 --chargers 20`: a bigger site; `--regulation --signal FILE` adds an hour of "
    "frequency regulation with its PJM score",
    "`evsite plan --meter <your meter CSV> --out plan-out`: plan your own building",
    "`evsite serve` (with `[api] enabled = true` and a token from `evsite config new-token`) and "
    "`evsite simulate --speed 1` in another terminal: the same site live, in real time",
)
MEANINGS_MD = "\n".join(f"- {m}" for m in MEANINGS)
NEXT_STEPS_MD = "\n".join(f"- {m}" for m in NEXT_STEPS)


def plot_load_stack(samples: list[tuple[float, float, float]], limit_kw: float, path: Path) -> None:
    """Building + EV load (stacked) against the site's continuous limit, one point per monitor sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = np.asarray(samples, dtype=float).reshape(-1, 3)
    hours = arr[:, 0] / 3600.0
    building = np.nan_to_num(arr[:, 1])
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.stackplot(hours, building, arr[:, 2], labels=["building", "EV charging"], colors=["#a0aec0", "#38a169"],
                 step="post")  # fmt: skip
    ax.axhline(limit_kw, color="#e53e3e", label=f"site limit (continuous) {limit_kw:.0f} kW")
    ax.set_xlabel("simulated hour")
    ax.set_ylabel("kW")
    ax.set_ylim(0, max(limit_kw, float((building + arr[:, 2]).max(initial=0.0))) * 1.1)
    ax.legend(loc="upper left")
    ax.set_title("Site load against its limit (as the central system saw it)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_chargers(
    power: list[tuple], limits: list[tuple], volts_phases: dict[str, tuple[float, int]], path: Path
) -> None:
    """One panel per charger: each connector's power (MeterValues) and the limit it was sent (step line).

    ``power`` rows are ``(cp_id, connector_id, time, watts)``; ``limits`` rows ``(cp_id, connector_id, time,
    limit, unit)`` of accepted SetChargingProfile requests (connector 0: every connector of that charger).
    Current limits are shown as power through the charger's own voltage and phase count.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chargers = sorted({r[0] for r in power} | {r[0] for r in limits})
    if not chargers:
        return
    times = [r[2] for r in power] + [r[2] for r in limits]
    t0 = min(times)
    fig, axes = plt.subplots(len(chargers), 1, figsize=(9, 1.8 * len(chargers) + 0.6), sharex=True, squeeze=False)
    for ax, cp in zip(axes[:, 0], chargers, strict=True):
        volts, phases = volts_phases.get(cp, (230.0, 3))
        conns = sorted({r[1] for r in power if r[0] == cp} | {r[1] for r in limits if r[0] == cp and r[1] > 0})
        for i, n in enumerate(conns or [1]):
            pts = sorted((r[2], r[3]) for r in power if r[0] == cp and r[1] == n)
            if pts:
                ax.plot([(t - t0).total_seconds() / 3600 for t, _ in pts], [w / 1000 for _, w in pts],
                        color=f"C{i}", lw=1.2, label=f"#{n} power")  # fmt: skip
            lim = sorted((r[2], r[3] * (volts * phases if r[4] == "A" else 1.0) / 1000)
                         for r in limits if r[0] == cp and r[1] in (0, n))  # fmt: skip
            if lim:
                ax.step([(t - t0).total_seconds() / 3600 for t, _ in lim], [kw for _, kw in lim], where="post",
                        color=f"C{i}", ls="--", lw=1, label=f"#{n} limit")  # fmt: skip
        ax.set_ylabel(f"{cp}\nkW", fontsize=8)
        ax.legend(fontsize=7, loc="upper right", ncol=4)
    axes[-1, 0].set_xlabel("simulated hours since the first record")
    fig.suptitle("Per-charger power and the limits load management sent")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(report: DemoReport, samples: list[tuple[float, float, float]], out: Path) -> Path:
    """Write ``report.md`` and ``load_vs_limit.png`` into ``out``; returns the Markdown file's path."""
    out.mkdir(parents=True, exist_ok=True)
    truth = report.ground_truth
    limit = truth.get("limit_kw", 0.0)
    plot_load_stack(samples, limit, out / "load_vs_limit.png")
    rows = "\n".join(
        f"| {r.hour} | {r.building_kw:.1f} | {r.ev_kw_max:.1f} | {r.ev_limit_kw:.1f} | {r.service_kw:.1f} |"
        for r in report.hours
    )
    g = truth.get
    plan_rows = [
        (
            "chargers without load management",
            report.chargers_without_lm,
            "NEC 220.87: the building's peak x 125 % plus every charger at full rating fits the service",
        ),
        (
            "chargers with load management",
            report.chargers_with_lm,
            "NEC 625.42: a controller keeps building + EV under the limit; sized so each charger gets "
            f"{report.ev_kwh_per_charger_day:g} kWh per charger-day; "
            f"that figure: {report.ev_source or 'planning default'}",
        ),
        ("EV energy cost per day", f"${report.cost_per_day:,.2f}", "the plan's schedule priced with the tariff"),
    ]
    truth_rows = [
        ("limit", f"{limit:.1f} kW", "service rating x continuous load factor"),
        ("peak site load", f"{g('peak_kw', 0.0):.1f} kW", "building + EV at the simulator's own resolution"),
        ("time over the limit", f"{g('seconds_over', 0.0):.0f} s",
         f"a violation only when one excursion lasts longer than {g('response_s', 0)} s"),
        ("violations", g("violations", "?"), "must be 0"),
        ("energy delivered / requested",
         f"{g('energy_delivered_kwh', 0.0):.1f} / {g('energy_requested_kwh', 0.0):.1f} kWh",
         "delivered at the connectors against what the plugged-in EVs asked for (arrival to target charge)"),
        ("sessions fully served", f"{g('sessions_served', 0)} / {g('sessions', 0)}",
         "plugged-in EVs that reached their target charge (short by < 0.1 kWh); a run that ends mid-session "
         "counts the cars still charging as not served"),
        ("transactions in the store", f"{report.transactions} ({report.transactions_closed} closed)",
         "from StartTransaction / StopTransaction"),
        ("charging profiles accepted", f"{report.profiles_accepted} / {report.profiles_sent}",
         "fail-safe at boot plus live limits, each stored with its reason"),
    ]  # fmt: skip

    def table(items: list[tuple[str, object, str]]) -> str:
        lines = ["| number | value | what it means |", "|---|---|---|"]
        return "\n".join(lines + [f"| {a} | {b} | {c} |" for a, b, c in items])

    fresh = "fresh for this run" if report.fresh_store else "given with --db: earlier runs' rows count too"
    text = f"""# evsite demo report

{report.chargers} simulated chargers ({report.connectors} connectors), {report.simulated_hours:.1f} simulated hours
in {report.wall_s:.0f} s at {report.speed:g}x. Store: `{report.store_url}` ({fresh}).

## 1. The plan (`{report.plan_dir}`)

{table(plan_rows)}

The load study's plots (clustered daily profiles, capacity and schedule) are in `{report.plan_dir}/plots/`.

## 2. The simulated day as the central system saw it

![load against limit](load_vs_limit.png)

![per-charger power and limits](chargers.png)

| hour | building kW (mean) | EV kW (max seen) | EV limit of the plan kW | service x continuous factor kW |
|---|---|---|---|---|
{rows}

EV power is the chargers' own MeterValues (one every 5 simulated minutes), so it lags a limit change by up to
one sample; the largest EV excess over the plan's limit beyond that lag was {report.ev_peak_over_limit_kw:.2f} kW.

## 3. What really happened (the simulator's ground truth)

{table(truth_rows)}

## What the numbers mean

{MEANINGS_MD}

## What to try next

{NEXT_STEPS_MD}
"""
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path
