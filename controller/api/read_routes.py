"""Read endpoints (``read`` or ``operator`` token): site state, chargers, transactions, meter values, profiles,
events, id tags, the plan and the load history."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from controller.api import queries
from controller.api.deps import Ctx, Reader
from controller.api.schemas import (
    ChargerOut,
    ConnectorOut,
    EventOut,
    HistoryOut,
    IdTagOut,
    MeterValueOut,
    ProfileOut,
    TransactionOut,
)
from controller.store import TransactionRow
from evsite.site_state import SiteState

router = APIRouter(prefix="/api")

#: Largest page any list endpoint returns.
MAX_LIMIT = 10_000


@router.get("/site", response_model=SiteState, summary="building, EV and total load against the limit now")
async def site(ctx: Ctx, _: Reader) -> SiteState:
    return ctx.source.site_state()


@router.get("/history", response_model=HistoryOut, summary="load stack and limit over the last hours")
async def history(ctx: Ctx, _: Reader, hours: Annotated[float, Query(gt=0, le=168)] = 6.0) -> HistoryOut:
    points = ctx.live.history(hours)
    return HistoryOut(
        at=[p.at for p in points],
        building_kw=[p.building_kw for p in points],
        ev_kw=[p.ev_kw for p in points],
        limit_kw=[p.limit_kw for p in points],
    )


async def _chargers(ctx: Ctx, cp_id: str | None = None) -> list[ChargerOut]:
    rows = await asyncio.to_thread(ctx.store.charge_points)
    conns = await asyncio.to_thread(ctx.store.connectors, cp_id)
    # Grouped by charger once: a site with thousands of chargers must not pay chargers x connectors here.
    stored: dict[str, dict[int, Any]] = defaultdict(dict)
    for c in conns:
        stored[c.cp_id][c.connector_id] = c
    managed: dict[str, dict[int, Any]] = defaultdict(dict)
    for c in ctx.source.site_state().connectors:
        managed[c.cp_id][c.connector_id] = c
    online, owned = ctx.csms.connected, ctx.config_charger_ids()
    out = []
    for r in rows:
        if cp_id is not None and r.id != cp_id:
            continue
        mine, theirs = stored.get(r.id, {}), managed.get(r.id, {})
        connectors = []
        for n in sorted(set(mine) | set(theirs)):
            row, st = mine.get(n), theirs.get(n)
            live = ctx.csms.connector_status.get((r.id, n))
            connectors.append(
                ConnectorOut(
                    connector_id=n,
                    status=live.status if live else (row.status if row else (st.status if st else None)),
                    error_code=live.error_code if live else (row.error_code if row else None),
                    updated_at=live.at if live else (row.updated_at if row else None),
                    limit_a=st.limit_a if st else None,
                    limit_reason=st.reason if st else None,
                    power_kw=st.power_kw if st else None,
                )
            )
        out.append(
            ChargerOut(
                id=r.id,
                online=r.id in online,
                owner="config" if r.id in owned else "store",
                last_seen=r.last_seen,
                last_boot=r.last_boot,
                vendor=r.vendor,
                model=r.model,
                firmware_version=r.firmware_version,
                auto_registered=r.auto_registered,
                capabilities=r.capabilities,
                open_transactions=sorted(ctx.csms.open_transactions(r.id)),
                connectors=connectors,
                clock_offset_s=None if (clock := ctx.csms.clock_estimate(r.id)) is None else round(clock.offset_s, 3),
            )
        )
    return out


@router.get("/chargers", response_model=list[ChargerOut], summary="every known charger")
async def chargers(ctx: Ctx, _: Reader) -> list[ChargerOut]:
    return await _chargers(ctx)


@router.get("/chargers/{cp_id}", response_model=ChargerOut, summary="one charger")
async def charger(ctx: Ctx, _: Reader, cp_id: str) -> ChargerOut:
    found = await _chargers(ctx, cp_id)
    if not found:
        raise HTTPException(404, f"no charger {cp_id!r}")
    return found[0]


def _tx_out(t: TransactionRow) -> TransactionOut:
    energy = None
    if t.meter_stop is not None and t.meter_start is not None:
        energy = (t.meter_stop - t.meter_start) / 1000.0
    return TransactionOut(
        id=t.id,
        cp_id=t.cp_id,
        connector_id=t.connector_id,
        id_tag=t.id_tag,
        start_time=t.start_time,
        stop_time=t.stop_time,
        meter_start_wh=t.meter_start,
        meter_stop_wh=t.meter_stop,
        energy_kwh=energy,
        stop_reason=t.stop_reason,
        open=t.stop_time is None,
    )


CSV_COLUMNS = list(TransactionOut.model_fields)


@router.get(
    "/transactions",
    response_model=list[TransactionOut],
    summary="transactions, newest first (format=csv for billing)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def transactions(
    ctx: Ctx,
    _: Reader,
    open: bool | None = None,
    cp_id: str | None = None,
    id_tag: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    format: Literal["json", "csv"] = "json",
) -> Any:
    for name, t in (("since", since), ("until", until)):
        if t is not None and t.tzinfo is None:
            raise HTTPException(422, f"{name}: expected a time zone (Z or +hh:mm)")
    rows = await asyncio.to_thread(
        queries.transactions,
        ctx.store,
        cp_id=cp_id,
        id_tag=id_tag,
        open_only=open,
        since=since,
        until=until,
        limit=limit,
    )
    out = [_tx_out(r) for r in rows]
    if format == "json":
        return out
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for t in out:
        writer.writerow(t.model_dump(mode="json"))
    return Response(
        buf.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="transactions.csv"'},
    )


@router.get("/meter-values", response_model=list[MeterValueOut], summary="charger meter samples, oldest first")
async def meter_values(
    ctx: Ctx,
    _: Reader,
    cp_id: str | None = None,
    transaction_id: int | None = None,
    measurand: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
) -> list[MeterValueOut]:
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since: expected a time zone (Z or +hh:mm)")
    rows = await asyncio.to_thread(ctx.store.meter_values, cp_id, transaction_id, measurand, since, limit)
    return [MeterValueOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/profiles", response_model=list[ProfileOut], summary="charging profiles sent, why, and the answers")
async def profiles(ctx: Ctx, _: Reader, cp_id: str | None = None) -> list[ProfileOut]:
    rows = await asyncio.to_thread(ctx.store.charging_profiles, cp_id)
    return [ProfileOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/events", response_model=list[EventOut], summary="the event log, newest first")
async def events(
    ctx: Ctx,
    _: Reader,
    cp_id: str | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[EventOut]:
    rows = await asyncio.to_thread(queries.latest_events, ctx.store, cp_id=cp_id, kind=kind, limit=limit)
    return [EventOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/id-tags", response_model=list[IdTagOut], summary="drivers' id tags")
async def id_tags(ctx: Ctx, _: Reader) -> list[IdTagOut]:
    rows = await asyncio.to_thread(ctx.store.id_tags)
    owned = ctx.config_tag_ids()
    return [
        IdTagOut(
            id_tag=r.id_tag,
            status=r.status,
            expiry_date=r.expiry_date,
            parent_id_tag=r.parent_id_tag,
            owner="config" if r.id_tag in owned else "store",
        )
        for r in rows
    ]


def plan_document(source: object, now: datetime) -> dict[str, Any] | None:
    """The plan the site state source follows: its ``plan()`` answer, or its ``plan.schedule`` dataclass (load
    management's ``PlanFile``) with the period and EV ceiling in force now; None without one."""
    plan = getattr(source, "plan", None)
    if callable(plan):
        return plan()
    schedule = getattr(plan, "schedule", None)
    if schedule is None or not dataclasses.is_dataclass(schedule) or isinstance(schedule, type):
        return None
    doc = dataclasses.asdict(schedule)
    doc["period_now"] = schedule.period(now)  # type: ignore[attr-defined]
    doc["ev_ceiling_kw_now"] = schedule.ceiling_kw(now)  # type: ignore[attr-defined]
    return doc


@router.get("/plan", summary="the plan load management follows (404 until it has one)")
async def plan(ctx: Ctx, _: Reader) -> dict[str, Any]:
    current = plan_document(ctx.source, ctx.clock.now())
    if current is None:
        raise HTTPException(404, "no plan: load management is not running or has not loaded one ([site] plan)")
    return current
