"""Errors of the central system's public API, as one small tree.

Why a tree of our own: the ``ocpp`` library returns None on a CallError unless told otherwise and raises a bare
``asyncio.TimeoutError`` on silence; callers (load management, the regulation dispatcher, tests) need to tell
"the charger is not there", "it did not answer" and "it answered with an error" apart, and never get None.

::

    CsmsError
    ├── ChargePointNotConnected   no live connection for that charge point id
    ├── CallTimeout               the charger did not answer within the timeout
    ├── CallErrorReceived         the charger answered with a CALLERROR (code, description, details)
    ├── InvalidRequest            our own request violates the OCPP 1.6 schema (never sent)
    └── InvalidResponse           the charger's CALLRESULT violates the OCPP 1.6 schema
"""

from __future__ import annotations

from typing import Any


class CsmsError(Exception):
    """Base of every error raised by ``CentralSystem.send``."""


class ChargePointNotConnected(CsmsError):
    def __init__(self, cp_id: str) -> None:
        super().__init__(f"charge point {cp_id!r} is not connected")
        self.cp_id = cp_id


class CallTimeout(CsmsError):
    def __init__(self, cp_id: str, action: str, timeout_s: float) -> None:
        super().__init__(f"{cp_id}: no answer to {action} within {timeout_s:g} s")
        self.cp_id, self.action, self.timeout_s = cp_id, action, timeout_s


class CallErrorReceived(CsmsError):
    """The charger refused a call with a CALLERROR; ``code`` is the OCPP-J error code."""

    def __init__(self, code: str, description: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code, self.description, self.details = code, description, details or {}


class InvalidRequest(CsmsError):
    """A request built by our own code fails the OCPP 1.6 schema: a bug on our side, caught before sending."""


class InvalidResponse(CsmsError):
    """The charger answered with a payload that fails the OCPP 1.6 schema for that action."""

    def __init__(self, cp_id: str, action: str, reason: str) -> None:
        super().__init__(f"{cp_id}: invalid {action} response: {reason}")
        self.cp_id, self.action, self.reason = cp_id, action, reason
