"""The router's dispatch without a network: handler errors become the right CALLERROR, NotSupported is quiet,
calls resolve, time out and fail on a lost connection; validation honours ``multipleOf`` exactly."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from typing import Any

import pytest
from ocpp.exceptions import FormatViolationError, GenericError, OccurrenceConstraintViolationError
from ocpp.v16 import call_result

from evsite.ocppj.dispatch import (
    CallTimedOut,
    Endpoint,
    InvalidPayload,
    PeerGone,
    RemoteCallError,
    after,
    handles,
    routes,
)
from evsite.ocppj.framing import OcppViolation
from evsite.ocppj.validation import validate


class Wire:
    """A stand-in connection: keeps what the endpoint sends."""

    def __init__(self) -> None:
        self.sent: list[list[Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


class Owner:
    def __init__(self) -> None:
        self.after_calls: list[str] = []
        self.refuse: Exception | None = None

    @handles("DataTransfer")
    def data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None) -> Any:
        if self.refuse is not None:
            raise self.refuse
        return call_result.DataTransfer(status="Accepted", data=data)

    @after("DataTransfer")
    def after_data_transfer(self, vendor_id: str, **_: Any) -> None:
        self.after_calls.append(vendor_id)

    @handles("Heartbeat")
    def heartbeat(self) -> Any:
        return {"current_time": "2026-01-01T00:00:00Z"}

    @handles("ClearCache")
    def clear_cache(self) -> Any:
        return call_result.ClearCache(status="Maybe")  # a bug: not a ClearCacheStatus

    @handles("GetLocalListVersion")
    def local_list_version(self) -> Any:
        return None  # a bug: no payload


def endpoint(owner: Owner | None = None, timeout_s: float = 1.0) -> tuple[Endpoint, Wire, Owner]:
    owner = owner or Owner()
    wire = Wire()
    ep = Endpoint(owner, wire, cp_id="CP", logger=logging.getLogger("test.ocppj"), response_timeout_s=timeout_s)
    return ep, wire, owner


DT = '[2,"u1","DataTransfer",{"vendorId":"v","data":"d"}]'


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (GenericError(description="busy"), "GenericError"),
        (FormatViolationError(description="x"), "FormationViolation"),  # the library's 2.0.1 spelling, made 1.6
        (OccurrenceConstraintViolationError(description="x"), "OccurenceConstraintViolation"),
        (OcppViolation("NotSupported", "not this one"), "NotSupported"),
        (KeyError("bug"), "InternalError"),
    ],
)
async def test_a_handler_error_becomes_the_1_6_callerror(raised: Exception, code: str) -> None:
    ep, wire, owner = endpoint()
    owner.refuse = raised
    await ep.receive(DT)
    assert wire.sent[-1][:3] == [4, "u1", code]
    assert owner.after_calls == [], "@after runs only after a CALLRESULT"


async def test_answer_is_camel_case_and_after_runs() -> None:
    ep, wire, owner = endpoint()
    await ep.receive(DT)
    await ep.receive('[2,"u2","Heartbeat",{}]')
    assert wire.sent == [
        [3, "u1", {"status": "Accepted", "data": "d"}],
        [3, "u2", {"currentTime": "2026-01-01T00:00:00Z"}],
    ]
    assert owner.after_calls == ["v"]


async def test_not_supported_is_logged_as_info_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    ep, wire, _ = endpoint()
    with caplog.at_level(logging.DEBUG, logger="test.ocppj"):
        await ep.receive('[2,"u3","Reset",{"type":"Hard"}]')
    assert wire.sent[-1][:3] == [4, "u3", "NotSupported"]
    (record,) = caplog.records
    assert record.levelno == logging.INFO and record.exc_info is None


async def test_calls_resolve_fail_and_time_out() -> None:
    ep, wire, _ = endpoint(timeout_s=0.05)
    task = asyncio.create_task(ep.call("Heartbeat", {}, unique_id="c1"))
    await asyncio.sleep(0)
    assert wire.sent[-1] == [2, "c1", "Heartbeat", {}]
    await ep.receive('[3,"c1",{"currentTime":"2026-01-01T00:00:00Z"}]')
    assert await task == {"currentTime": "2026-01-01T00:00:00Z"}

    task = asyncio.create_task(ep.call("Heartbeat", {}, unique_id="c2"))
    await asyncio.sleep(0)
    await ep.receive('[4,"c2","GenericError","nope",{"k":1}]')
    with pytest.raises(RemoteCallError) as err:
        await task
    assert (err.value.code, err.value.details) == ("GenericError", {"k": 1})

    task = asyncio.create_task(ep.call("Heartbeat", {}, unique_id="c3"))
    await asyncio.sleep(0)
    await ep.receive('[3,"c3",{"currentTime":5}]')
    with pytest.raises(InvalidPayload, match="currentTime"):
        await task
    with pytest.raises(InvalidPayload, match="request"):
        await ep.call("Heartbeat", {"bogus": 1})
    with pytest.raises(CallTimedOut):
        await ep.call("Heartbeat", {})

    task = asyncio.create_task(ep.call("Heartbeat", {}))
    await asyncio.sleep(0)
    ep.connection_lost()
    with pytest.raises(PeerGone):
        await task
    with pytest.raises(PeerGone):
        await ep.call("Heartbeat", {})


def test_routes_are_read_once_per_class_and_checked() -> None:
    assert set(routes(Owner)) == {"DataTransfer", "Heartbeat", "ClearCache", "GetLocalListVersion"}
    assert routes(Owner)["DataTransfer"].after == "after_data_transfer"
    with pytest.raises(ValueError, match=r"not an OCPP 1\.6 action"):
        handles("Heartbeet")


def _profile(limit: float) -> dict[str, Any]:
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": schedule,
        },
    }


@pytest.mark.parametrize("limit", [21.4, 0.3, 16, 6.1])
def test_multiple_of_accepts_decimal_tenths(limit: float) -> None:
    validate("SetChargingProfile", "req", _profile(limit))  # 21.4 / 0.1 in binary floats is 213.99999999999997


def test_multiple_of_refuses_hundredths() -> None:
    with pytest.raises(OcppViolation) as err:
        validate("SetChargingProfile", "req", _profile(21.45))
    assert err.value.code == "PropertyConstraintViolation" and "limit" in err.value.description


async def test_a_call_lost_while_sending_leaves_no_unretrieved_future() -> None:
    """The connection drops during the send: the caller gets PeerGone and asyncio logs no orphaned error."""
    from websockets.exceptions import ConnectionClosedError

    class Dropping(Wire):
        async def send(self, text: str) -> None:
            ep.connection_lost()  # the reader saw the close first
            raise ConnectionClosedError(None, None)

    ep = Endpoint(Owner(), Dropping(), cp_id="CP", logger=logging.getLogger("test.ocppj"), response_timeout_s=1.0)
    orphans: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: orphans.append(context))
    with pytest.raises(PeerGone):
        await ep.call("Heartbeat", {})
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert orphans == []


@pytest.mark.parametrize("check_answers", [True, False])
async def test_our_own_bad_answer_is_an_internal_error_not_the_peers_fault(check_answers: bool) -> None:
    ep, wire, _ = endpoint()
    ep.check_answers = check_answers
    await ep.receive('[2,"b1","GetLocalListVersion",{}]')
    assert wire.sent[-1][:3] == [4, "b1", "InternalError"]
    await ep.receive('[2,"b2","ClearCache",{}]')
    expected = [4, "b2", "InternalError"] if check_answers else [3, "b2", {"status": "Maybe"}]
    assert wire.sent[-1][:3] == expected
