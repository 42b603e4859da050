"""Write endpoints (``operator`` token): OCPP commands to a charger, the temporary site limit, re-plan, id tags
and chargers. Every write, refused or not, lands in the event log with the token's name as ``who``.

Status codes: 404 unknown charger or tag, 409 charger offline or an id owned by ``config.toml`` (the message
names the file), 422 bad input (the message names the field), 502 the charger answered with a CALLERROR (its
code in ``code``) or an invalid answer, 504 no answer in time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException
from ocpp.v16 import call

from controller.api.auth import Caller
from controller.api.context import ApiContext
from controller.api.deps import Ctx, Operator
from controller.api.schemas import (
    AvailabilityIn,
    ChargerIn,
    CommandResult,
    DepartureIn,
    DepartureOut,
    IdTagIn,
    RemoteStartIn,
    RemoteStopIn,
    ResetIn,
    SiteLimitIn,
    SiteLimitOut,
    TriggerIn,
    UnlockIn,
)
from controller.api.site_state import continuous_rating_kw
from controller.errors import CallErrorReceived, CallTimeout, ChargePointNotConnected, CsmsError
from evsite import topics
from evsite.departure_update import DepartureUpdate
from evsite.site_state import SiteLimitOverride

router = APIRouter(prefix="/api")


def _record(ctx: ApiContext, caller: Caller, cp_id: str | None, what: str, **data: Any) -> None:
    ctx.csms.record_event(cp_id, f"api_{what}", who=caller.name, **data)


async def _send(ctx: ApiContext, caller: Caller, cp_id: str, request: Any, body: dict[str, Any]) -> CommandResult:
    """Send one OCPP call for an operator and map the outcome to an HTTP answer."""
    action = type(request).__name__
    if await asyncio.to_thread(ctx.store.charge_point, cp_id) is None:
        raise HTTPException(404, f"no charger {cp_id!r}")
    if cp_id not in ctx.csms.connected:
        _record(ctx, caller, cp_id, "command", action=action, request=body, outcome="offline")
        raise HTTPException(409, f"charger {cp_id!r} is offline")
    metrics = ctx.extra.get("metrics")
    started = time.perf_counter()
    answered = True
    try:
        result = await ctx.csms.send(cp_id, request, reason=f"operator {caller.name} via the API")
    except ChargePointNotConnected:
        answered = False
        _record(ctx, caller, cp_id, "command", action=action, request=body, outcome="offline")
        raise HTTPException(409, f"charger {cp_id!r} is offline") from None
    except CallErrorReceived as err:
        _record(ctx, caller, cp_id, "command", action=action, request=body, outcome=f"CALLERROR {err.code}")
        raise HTTPException(
            502, {"message": f"{cp_id} answered {action} with a CALLERROR: {err}", "code": err.code}
        ) from None
    except CallTimeout as err:
        answered = False
        _record(ctx, caller, cp_id, "command", action=action, request=body, outcome="timeout")
        raise HTTPException(504, str(err)) from None
    except CsmsError as err:
        _record(ctx, caller, cp_id, "command", action=action, request=body, outcome=f"error: {err}")
        raise HTTPException(502, {"message": str(err), "code": type(err).__name__}) from None
    finally:
        if metrics is not None and answered:
            metrics.observe_call(action, time.perf_counter() - started)  # type: ignore[attr-defined]
    answer = {k: v for k, v in dataclasses.asdict(result).items() if v is not None}
    _record(ctx, caller, cp_id, "command", action=action, request=body, outcome=str(answer.get("status", "ok")))
    return CommandResult(cp_id=cp_id, action=action, result=answer)


@router.post("/chargers/{cp_id}/remote-start", response_model=CommandResult, summary="RemoteStartTransaction")
async def remote_start(ctx: Ctx, who: Operator, cp_id: str, body: RemoteStartIn) -> CommandResult:
    return await _send(ctx, who, cp_id, call.RemoteStartTransaction(**body.model_dump(exclude_none=True)),
                       body.model_dump())  # fmt: skip


@router.post("/chargers/{cp_id}/remote-stop", response_model=CommandResult, summary="RemoteStopTransaction")
async def remote_stop(ctx: Ctx, who: Operator, cp_id: str, body: RemoteStopIn) -> CommandResult:
    return await _send(ctx, who, cp_id, call.RemoteStopTransaction(transaction_id=body.transaction_id),
                       body.model_dump())  # fmt: skip


@router.post("/chargers/{cp_id}/reset", response_model=CommandResult, summary="Reset (Soft or Hard)")
async def reset(ctx: Ctx, who: Operator, cp_id: str, body: ResetIn | None = None) -> CommandResult:
    body = body or ResetIn()
    return await _send(ctx, who, cp_id, call.Reset(type=body.type), body.model_dump())


@router.post("/chargers/{cp_id}/unlock", response_model=CommandResult, summary="UnlockConnector")
async def unlock(ctx: Ctx, who: Operator, cp_id: str, body: UnlockIn) -> CommandResult:
    return await _send(ctx, who, cp_id, call.UnlockConnector(connector_id=body.connector_id), body.model_dump())


@router.post("/chargers/{cp_id}/availability", response_model=CommandResult, summary="ChangeAvailability")
async def availability(ctx: Ctx, who: Operator, cp_id: str, body: AvailabilityIn) -> CommandResult:
    return await _send(ctx, who, cp_id, call.ChangeAvailability(connector_id=body.connector_id, type=body.type),
                       body.model_dump())  # fmt: skip


@router.post("/chargers/{cp_id}/trigger", response_model=CommandResult, summary="TriggerMessage")
async def trigger(ctx: Ctx, who: Operator, cp_id: str, body: TriggerIn) -> CommandResult:
    return await _send(ctx, who, cp_id, call.TriggerMessage(**body.model_dump(exclude_none=True)), body.model_dump())


@router.post("/chargers/{cp_id}/clear-cache", response_model=CommandResult, summary="ClearCache")
async def clear_cache(ctx: Ctx, who: Operator, cp_id: str) -> CommandResult:
    return await _send(ctx, who, cp_id, call.ClearCache(), {})


# ---------------------------------------------------------------------- site


@router.post("/site/limit", response_model=SiteLimitOut, summary="a temporary site limit with an expiry")
async def site_limit(ctx: Ctx, who: Operator, body: SiteLimitIn) -> SiteLimitOut:
    cfg = ctx.config()
    rating = continuous_rating_kw(cfg)
    if body.limit_kw > rating:
        _record(ctx, who, None, "site_limit", limit_kw=body.limit_kw, outcome="refused: above rating")
        raise HTTPException(
            422, f"limit_kw: {body.limit_kw:g} kW is above the service's continuous rating ({rating:.1f} kW)"
        )
    if body.minutes > cfg.api.max_site_limit_minutes:
        raise HTTPException(422, f"minutes: at most {cfg.api.max_site_limit_minutes:g} ([api] max_site_limit_minutes)")
    expires = ctx.clock.now() + timedelta(minutes=body.minutes)
    override = SiteLimitOverride(body.limit_kw, expires, who.name)
    ctx.bus.publish(topics.LOADMGMT_SITE_LIMIT, override)
    _record(ctx, who, None, "site_limit", limit_kw=body.limit_kw, expires_at=expires.isoformat(), outcome="published")
    return SiteLimitOut(limit_kw=body.limit_kw, expires_at=expires, who=who.name, continuous_rating_kw=rating)


@router.post("/plan/replan", status_code=202, summary="ask load management to recompute its plan now")
async def replan(ctx: Ctx, who: Operator) -> dict[str, str]:
    ctx.bus.publish(topics.LOADMGMT_REPLAN, who.name)
    _record(ctx, who, None, "replan")
    return {"requested_by": who.name}


@router.post(
    "/transactions/{transaction_id}/departure",
    response_model=DepartureOut,
    summary="a driver's departure time (and energy wanted) for an open session, for deadline-aware limits",
)
async def departure(ctx: Ctx, who: Operator, transaction_id: int, body: DepartureIn) -> DepartureOut:
    """OCPP 1.6 carries no departure time: a driver app or the operator gives it here, and load management uses
    it for this transaction instead of its estimate from the id tag's history."""
    tx = await asyncio.to_thread(ctx.store.transaction, transaction_id)
    if tx is None:
        raise HTTPException(404, f"no transaction {transaction_id}")
    if tx.stop_time is not None:
        raise HTTPException(409, f"transaction {transaction_id} ended at {tx.stop_time.isoformat()}")
    if body.departure_at.tzinfo is None:
        raise HTTPException(422, "departure_at: give the UTC offset (e.g. 2026-11-30T17:30:00+01:00)")
    now = ctx.clock.now()
    if body.departure_at <= now:
        raise HTTPException(422, f"departure_at: {body.departure_at.isoformat()} is not after now ({now.isoformat()})")
    update = DepartureUpdate(tx.cp_id, transaction_id, body.departure_at, body.energy_kwh, who.name)
    ctx.bus.publish(topics.LOADMGMT_DEPARTURE, update)
    _record(ctx, who, tx.cp_id, "departure", transaction_id=transaction_id,
            departure_at=body.departure_at.isoformat(), energy_kwh=body.energy_kwh)  # fmt: skip
    return DepartureOut(transaction_id=transaction_id, cp_id=tx.cp_id, departure_at=body.departure_at,
                        energy_kwh=body.energy_kwh, who=who.name)  # fmt: skip


# ---------------------------------------------------------------------- id tags and chargers


def _owned(ctx: ApiContext, kind: str, ident: str, ids: set[str]) -> None:
    if ident in ids:
        raise HTTPException(409, f"{kind} {ident!r} is defined in {ctx.config_file()}: change it there")


@router.post("/id-tags", status_code=201, summary="add or change an id tag (not one from config.toml)")
async def add_id_tag(ctx: Ctx, who: Operator, body: IdTagIn) -> dict[str, str]:
    _owned(ctx, "id tag", body.id_tag, ctx.config_tag_ids())
    if body.expiry_date is not None and body.expiry_date.tzinfo is None:
        raise HTTPException(422, "expiry_date: expected a time zone (Z or +hh:mm)")
    await ctx.csms.set_id_tag(body.id_tag, body.status, body.expiry_date, body.parent_id_tag)
    _record(ctx, who, None, "id_tag_set", id_tag=body.id_tag, status=body.status)
    return {"id_tag": body.id_tag, "status": body.status}


@router.delete("/id-tags/{id_tag}", summary="revoke an id tag (status Blocked; not one from config.toml)")
async def revoke_id_tag(ctx: Ctx, who: Operator, id_tag: str) -> dict[str, str]:
    _owned(ctx, "id tag", id_tag, ctx.config_tag_ids())
    row = await asyncio.to_thread(ctx.store.id_tag, id_tag)
    if row is None:
        raise HTTPException(404, f"no id tag {id_tag!r}")
    await ctx.csms.set_id_tag(id_tag, "Blocked", row.expiry_date, row.parent_id_tag)
    _record(ctx, who, None, "id_tag_revoked", id_tag=id_tag)
    return {"id_tag": id_tag, "status": "Blocked"}


@router.post("/chargers", status_code=201, summary="add a charger (it lives in the store)")
async def add_charger(ctx: Ctx, who: Operator, body: ChargerIn) -> dict[str, str]:
    from evsite.passwords import hash_password

    _owned(ctx, "charger", body.id, ctx.config_charger_ids())
    if await asyncio.to_thread(ctx.store.charge_point, body.id) is not None:
        raise HTTPException(409, f"charger {body.id!r} is already known")
    digest = await asyncio.to_thread(hash_password, body.password) if body.password else None
    await asyncio.to_thread(ctx.store.register_charge_point, body.id, ctx.clock.now(), digest)
    await ctx.csms.apply_config(ctx.csms.config)  # reloads the known chargers from the store
    _record(ctx, who, body.id, "charger_added", password=bool(digest))
    return {"id": body.id}


@router.delete("/chargers/{cp_id}", summary="forget a charger added through the API (history is kept)")
async def remove_charger(ctx: Ctx, who: Operator, cp_id: str) -> dict[str, str]:
    from controller.api.queries import forget_charge_point

    _owned(ctx, "charger", cp_id, ctx.config_charger_ids())
    if not await asyncio.to_thread(forget_charge_point, ctx.store, cp_id):
        raise HTTPException(404, f"no charger {cp_id!r}")
    await ctx.csms.apply_config(ctx.csms.config)
    _record(ctx, who, cp_id, "charger_removed")
    return {"id": cp_id}
