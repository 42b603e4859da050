"""Dispatch: one OCPP-J connection's router, the same for the central system and the simulated charge point.

An ``Endpoint`` answers the peer's CALLs with its owner's handlers (methods marked ``@handles("Action")``) and
matches CALLRESULT/CALLERROR frames to the calls it sent. Every defect gets the OCPP-J 1.6 §4.2.3 CALLERROR
(see ``evsite.ocppj.framing``) and the connection keeps working:

- an action OCPP 1.6 does not define: ``NotImplemented``; a 1.6 action the owner has no handler for:
  ``NotSupported`` (logged at info, no traceback: a peer asking is normal);
- a payload failing the schema: the constraint's code (validated inline, see ``evsite.ocppj.validation``);
- a handler raising ``OcppViolation`` or one of the library's ``OCPPError``: that code (1.6 spelling);
- any other exception in a handler, or an answer of ours that is no payload or (with ``check_answers``) fails
  the schema: ``InternalError`` (a bug on our side: logged with its traceback, never blamed on the peer).

Handlers take the payload's top-level keys as snake_case keyword arguments (nested values stay camelCase as
sent) and return a ``call_result`` dataclass or a dict; an ``@after("Action")`` method runs once the answer
is sent (a Reset reboots only after saying Accepted).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from ocpp.exceptions import OCPPError
from websockets.exceptions import ConnectionClosed

from evsite.log import log_event
from evsite.ocppj.framing import (
    CALL,
    CALLRESULT,
    CallFrame,
    ErrorFrame,
    Frame,
    OcppViolation,
    ResultFrame,
    dumps,
    parse_frame,
)
from evsite.ocppj.payloads import to_top_snake, to_wire
from evsite.ocppj.validation import V16_ACTIONS, validate

F = TypeVar("F", bound=Callable[..., Any])
#: Unique ids of the calls we send: this process's random prefix and a counter. Unique across connections and
#: restarts like a uuid4 per call, which cost a system call (``os.urandom``) and ~12 % of sending a call.
_ID_PREFIX = uuid.uuid4().hex[:12]
_ID_COUNTER = itertools.count(1)
_HANDLES, _AFTER = "ocppj_handles", "ocppj_after"


def handles(action: str) -> Callable[[F], F]:
    """Mark a method as the handler of the peer's ``action`` CALLs."""
    return _mark(_HANDLES, action)


def after(action: str) -> Callable[[F], F]:
    """Mark a method to run after the answer to an ``action`` CALL is sent (a coroutine runs as a task)."""
    return _mark(_AFTER, action)


def _mark(attr: str, action: str) -> Callable[[F], F]:
    if action not in V16_ACTIONS:
        raise ValueError(f"{action!r} is not an OCPP 1.6 action")

    def mark(fn: F) -> F:
        setattr(fn, attr, action)
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class Route:
    """Method names (not bound methods: the table is built once per class, not per connection)."""

    handler: str
    after: str | None = None


@cache
def routes(cls: type) -> dict[str, Route]:
    """The ``@handles``/``@after`` methods of a class and its bases, by action."""
    handlers: dict[str, str] = {}
    afters: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            if (action := getattr(attr, _HANDLES, None)) is not None:
                handlers[action] = name
            if (action := getattr(attr, _AFTER, None)) is not None:
                afters[action] = name
    orphans = set(afters) - set(handlers)
    if orphans:
        raise TypeError(f"{cls.__name__}: @after without @handles for {sorted(orphans)}")
    return {action: Route(name, afters.get(action)) for action, name in handlers.items()}


# ---------------------------------------------------------------------------------------- outgoing call errors


class CallFailed(Exception):
    """Base of what ``Endpoint.call`` raises instead of returning a result."""


class PeerGone(CallFailed):
    """The connection closed before the answer came (or before the call could be sent)."""


class CallTimedOut(CallFailed):
    def __init__(self, action: str, timeout_s: float) -> None:
        super().__init__(f"no answer to {action} within {timeout_s:g} s")
        self.action, self.timeout_s = action, timeout_s


class RemoteCallError(CallFailed):
    """The peer answered with a CALLERROR."""

    def __init__(self, code: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {description}")
        self.code, self.description, self.details = code, description, details


class InvalidPayload(CallFailed):
    """Our request (``kind="req"``, never sent) or the peer's answer (``"conf"``) fails the OCPP 1.6 schema."""

    def __init__(self, action: str, kind: str, description: str) -> None:
        what = "request" if kind == "req" else "response"
        super().__init__(f"{action} {what} violates the OCPP 1.6 schema: {description}")
        self.action, self.kind, self.description = action, kind, description


# ---------------------------------------------------------------------------------------- the endpoint


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class Endpoint:
    """The router of one OCPP-J connection; ``owner`` holds the handlers, ``connection`` has ``send(str)``.

    ``cp_id`` names the charge point the connection belongs to (both sides) in logs. ``on_violation`` is told
    about every defect of the peer's (to keep a record); ``spawn`` runs ``@after`` coroutines (default: a task
    held by the endpoint). ``check_answers`` validates our own answers too (tests turn it on).
    ``on_call_done(action, seconds, outcome)`` is told how each call we sent ended, timed from the send:
    outcome ``ok``, ``callerror``, ``timeout``, ``lost`` (connection gone) or ``invalid`` (an answer that
    violates the schema); a plain callable so this package needs nothing from whoever keeps the metrics.
    """

    def __init__(
        self,
        owner: object,
        connection: Any,
        *,
        cp_id: str,
        logger: logging.Logger,
        response_timeout_s: float,
        check_answers: bool = False,
        on_violation: Callable[[OcppViolation, str], None] | None = None,
        spawn: Callable[[Coroutine[Any, Any, Any]], Any] | None = None,
        on_call_done: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self.owner = owner
        self.connection = connection
        self.cp_id = cp_id
        self.log = logger
        self.response_timeout_s = response_timeout_s
        self.check_answers = check_answers
        self.on_violation = on_violation
        self.on_call_done = on_call_done
        self._spawn = spawn or self._own_task
        self._routes = routes(type(owner))
        self._pending: dict[str, tuple[str, asyncio.Future[ResultFrame | ErrorFrame]]] = {}
        self._call_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    # ------------------------------------------------------------------ incoming

    async def receive(self, raw: str | bytes) -> None:
        """Route one WebSocket message."""
        frame = await self.parse(raw)
        if frame is not None:
            await self.dispatch(frame)

    async def parse(self, raw: str | bytes) -> Frame | None:
        """Decode a message; a broken one is answered (when the spec says so) and gives None."""
        try:
            return parse_frame(raw)
        except OcppViolation as err:
            self._violation(err, str(raw))
            if err.reply:
                await self._send(err.to_json())
            return None

    async def dispatch(self, frame: Frame) -> None:
        if type(frame) is CallFrame:
            await self.answer(frame)
            return
        pending = self._pending.get(frame.unique_id)
        if pending is None or pending[1].done():
            log_event(self.log, "unexpected_response", logging.WARNING, cp_id=self.cp_id, unique_id=frame.unique_id)
        else:
            pending[1].set_result(frame)  # type: ignore[arg-type]

    async def answer(self, frame: CallFrame) -> None:
        """Answer one CALL with its handler's result or the CALLERROR the defect deserves."""
        uid, action = frame.unique_id, frame.action
        route = self._routes.get(action)
        try:
            if route is None:
                if action not in V16_ACTIONS:
                    raise OcppViolation("NotImplemented", f"{action!r} is not an OCPP 1.6 action", uid)
                raise OcppViolation("NotSupported", f"{action} is not supported here", uid)
            validate(action, "req", frame.payload, uid)
            kwargs = to_top_snake(frame.payload)
            result = getattr(self.owner, route.handler)(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            payload = to_wire(result)
            if not isinstance(payload, dict):
                raise TypeError(f"the {action} handler returned {type(result).__name__}, not a payload")
            if self.check_answers:
                try:
                    validate(action, "conf", payload, uid)
                except OcppViolation as err:  # our answer is wrong, not the peer's call: a bug of ours
                    raise ValueError(f"our {action} answer violates the schema: {err.description}") from None
        except OcppViolation as err:
            self._violation(err, f"{action} {frame.payload}")
            await self._send(err.to_json(uid))
            return
        except OCPPError as err:
            violation = OcppViolation.from_library(err, uid)
            self._violation(violation, f"{action} {frame.payload}")
            await self._send(violation.to_json())
            return
        except Exception as err:  # a handler bug must not cost the peer its connection
            self.log.exception("handler %s failed for %s", action, self.cp_id)
            internal = OcppViolation("InternalError", f"{type(err).__name__} while handling {action}", uid)
            await self._send(internal.to_json())
            return
        await self._send(dumps([CALLRESULT, uid, payload]))
        if route.after is not None:
            res = getattr(self.owner, route.after)(**kwargs)
            if asyncio.iscoroutine(res):
                self._spawn(res)

    def _violation(self, err: OcppViolation, what: str) -> None:
        # NotSupported is a normal question between peers of different feature profiles, not a defect.
        level = logging.INFO if err.code == "NotSupported" else logging.WARNING
        log_event(self.log, "ocpp_violation", level, cp_id=self.cp_id, code=err.code, why=err.description)
        if self.on_violation is not None:
            self.on_violation(err, what[:200])

    async def _send(self, message: str) -> None:
        try:
            await self.connection.send(message)
        except ConnectionClosed as err:
            # The peer left while we answered: its loss, not an error of ours (the reader sees the close too).
            code = err.rcvd.code if err.rcvd is not None else None
            log_event(self.log, "answer_not_delivered", logging.INFO, cp_id=self.cp_id, close_code=code)

    def _own_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ outgoing

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        unique_id: str | None = None,
        timeout_s: float | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """Send a CALL (payload in wire form) and return the CALLRESULT payload, or raise ``CallFailed``.

        One call at a time per connection (OCPP-J §4.1.1). The timeout is real time on purpose: it guards
        network I/O, not simulated time.
        """
        if check:
            try:
                validate(action, "req", payload)
            except OcppViolation as err:
                raise InvalidPayload(action, "req", err.description) from None
        timeout_s = self.response_timeout_s if timeout_s is None else timeout_s
        uid = unique_id or f"{_ID_PREFIX}-{next(_ID_COUNTER)}"
        async with self._call_lock:
            if self.closed:
                raise PeerGone(self.cp_id)
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[ResultFrame | ErrorFrame] = loop.create_future()
            self._pending[uid] = (action, fut)
            started = time.perf_counter()
            # A timer on the answer's future rather than ``asyncio.wait_for``, which wraps it in another future
            # and two callbacks per call.
            expiry = loop.call_later(timeout_s, _expire, fut)
            try:
                await self.connection.send(dumps([CALL, uid, action, payload]))
                frame = await fut
            except TimeoutError:
                self._call_done(action, started, "timeout")
                raise CallTimedOut(action, timeout_s) from None
            except PeerGone:  # connection_lost() while we waited
                self._call_done(action, started, "lost")
                raise
            except (ConnectionError, ConnectionClosed):
                self._call_done(action, started, "lost")
                raise PeerGone(self.cp_id) from None
            finally:
                expiry.cancel()
                self._pending.pop(uid, None)
                if fut.done() and not fut.cancelled():
                    fut.exception()  # failed by connection_lost() while the send failed too: seen, not an error
        if type(frame) is ErrorFrame:
            self._call_done(action, started, "callerror")
            raise RemoteCallError(frame.code, frame.description, frame.details)
        if check:
            try:
                validate(action, "conf", frame.payload)
            except OcppViolation as err:
                self._call_done(action, started, "invalid")
                raise InvalidPayload(action, "conf", err.description) from None
        self._call_done(action, started, "ok")
        return frame.payload

    def _call_done(self, action: str, started: float, outcome: str) -> None:
        if self.on_call_done is not None:
            self.on_call_done(action, time.perf_counter() - started, outcome)

    def connection_lost(self) -> None:
        """Fail every call waiting on this connection, and every later one.

        ``@after`` work keeps running: it may be what closed the connection (a Reset).
        """
        self.closed = True
        for _action, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(PeerGone(self.cp_id))
