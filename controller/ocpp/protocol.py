"""OCPP-J 1.6 framing and schema validation, with no I/O.

Why our own and not ``ocpp.messages.unpack``/``validate_payload``: the library (i) drops a malformed frame
without answering, (ii) answers an unknown action with NotSupported where OCPP-J 1.6 §4.2.3 says
NotImplemented, (iii) uses the 2.0.1 code ``FormatViolation`` where 1.6 says ``FormationViolation``, and
(iv) runs jsonschema in a thread pool, ~110 µs and a thread hop per message. Here the same schema files the
library ships are compiled once with ``fastjsonschema`` (pure Python code generated per schema, several times
faster) and every defect gets the CALLERROR the spec prescribes, so the connection keeps working.

Error codes (OCPP-J 1.6 §4.2.3):

=============================  =====================================================================
FormationViolation              not JSON, not an array, unique id not a string, payload not an object,
                                or a property the schema does not allow
ProtocolError                   unknown MessageTypeId, or a frame with missing elements
NotImplemented                  an action OCPP 1.6 does not define
NotSupported                    a 1.6 action this side does not handle (e.g. a CS-initiated action)
OccurenceConstraintViolation    a required field is missing, or too few/many array items
TypeConstraintViolation         a field has the wrong JSON type
PropertyConstraintViolation     a field's value is outside its enum, length, range or format
=============================  =====================================================================
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastjsonschema
import jsonschema
import ocpp.v16
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.v16.enums import Action

CALL, CALLRESULT, CALLERROR = 2, 3, 4
UNKNOWN_ID = "-1"
V16_ACTIONS: frozenset[str] = frozenset(a.value for a in Action)
SCHEMA_DIR = os.path.join(os.path.dirname(ocpp.v16.__file__), "schemas")

# Schemas with ``multipleOf: 0.1`` on floats: binary floats fail that test (21.4 / 0.1 != 214), so these
# are checked with jsonschema on Decimal-parsed values, as the ocpp library does. All are rare,
# central-system-initiated messages, never on the hot path.
_DECIMAL = {("SetChargingProfile", "req"), ("RemoteStartTransaction", "req"), ("GetCompositeSchedule", "conf")}

_RULE_CODE = {
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "type": "TypeConstraintViolation",
    "additionalProperties": "FormationViolation",
}


class OcppViolation(Exception):
    """A defect that must be answered with a CALLERROR (``reply`` False: log only, e.g. a bad CALLRESULT)."""

    def __init__(self, code: str, description: str, unique_id: str = UNKNOWN_ID, reply: bool = True) -> None:
        super().__init__(f"{code}: {description}")
        self.code, self.description, self.unique_id, self.reply = code, description, unique_id, reply

    def to_json(self, unique_id: str | None = None) -> str:
        return dumps([CALLERROR, unique_id or self.unique_id, self.code, self.description[:255], {}])


@dataclass(frozen=True, slots=True)
class CallFrame:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResultFrame:
    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


Frame = CallFrame | ResultFrame | ErrorFrame

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=lambda o: _default(o)).encode


def _default(o: Any) -> Any:
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, enum.Enum):
        return o.value
    raise TypeError(f"cannot encode {type(o).__name__} in an OCPP frame")


def dumps(obj: Any) -> str:
    """Compact JSON as OCPP-J frames are sent."""
    return _dumps(obj)


def parse_frame(raw: str | bytes) -> Frame:
    """Decode one WebSocket message into a frame, or raise ``OcppViolation`` saying what the spec wants."""
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise OcppViolation("FormationViolation", "frame is not valid JSON") from None
    if not isinstance(msg, list):
        raise OcppViolation("FormationViolation", f"frame must be a JSON array, got {type(msg).__name__}")
    if len(msg) < 2:
        raise OcppViolation("ProtocolError", "frame has no MessageTypeId and UniqueId")
    type_id, uid = msg[0], msg[1]
    if not isinstance(uid, str):
        raise OcppViolation("FormationViolation", "UniqueId must be a string")
    if type_id == CALL:
        if len(msg) != 4:
            raise OcppViolation("ProtocolError", f"CALL must have 4 elements, got {len(msg)}", uid)
        action, payload = msg[2], msg[3]
        if not isinstance(action, str):
            raise OcppViolation("FormationViolation", "Action must be a string", uid)
        if not isinstance(payload, dict):
            raise OcppViolation("FormationViolation", "payload must be a JSON object", uid)
        return CallFrame(uid, action, payload)
    if type_id == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise OcppViolation("ProtocolError", "CALLRESULT must be [3, id, {payload}]", uid, reply=False)
        return ResultFrame(uid, msg[2])
    if type_id == CALLERROR:
        if len(msg) != 5 or not isinstance(msg[2], str):
            raise OcppViolation("ProtocolError", "CALLERROR must be [4, id, code, description, {details}]", uid, False)
        details = msg[4] if isinstance(msg[4], dict) else {}
        return ErrorFrame(uid, msg[2], str(msg[3]), details)
    raise OcppViolation("ProtocolError", f"unknown MessageTypeId {type_id!r}", uid)


def _strip_multiple_of(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_multiple_of(v) for k, v in node.items() if k != "multipleOf"}
    if isinstance(node, list):
        return [_strip_multiple_of(v) for v in node]
    return node


@cache
def _schema(action: str, kind: str) -> dict[str, Any] | None:
    name = action + ("Response" if kind == "conf" else "")
    path = os.path.join(SCHEMA_DIR, f"{name}.json")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


@cache
def _compiled(action: str, kind: str) -> Any:
    schema = _schema(action, kind)
    if schema is None:
        return None
    return fastjsonschema.compile(_strip_multiple_of(schema))


@cache
def _decimal_validator(action: str, kind: str) -> jsonschema.Draft4Validator:
    text = json.dumps(_schema(action, kind))
    return jsonschema.Draft4Validator(json.loads(text, parse_float=decimal.Decimal))


def validate(action: str, kind: str, payload: dict[str, Any], unique_id: str = UNKNOWN_ID) -> None:
    """Check a request (``kind="req"``) or response (``"conf"``) payload against the OCPP 1.6 schema."""
    fn = _compiled(action, kind)
    if fn is None:
        raise OcppViolation("NotImplemented", f"{action!r} is not an OCPP 1.6 action", unique_id)
    try:
        fn(payload)
    except fastjsonschema.JsonSchemaValueException as e:
        where = e.name.replace("data", action, 1)
        code = _RULE_CODE.get(e.rule or "", "PropertyConstraintViolation")
        raise OcppViolation(code, f"{where}: {e.message.replace(e.name, '').strip()}", unique_id) from None
    if (action, kind) in _DECIMAL:
        dec = json.loads(json.dumps(payload, default=_default), parse_float=decimal.Decimal)
        err = jsonschema.exceptions.best_match(_decimal_validator(action, kind).iter_errors(dec))
        if err is not None:
            where = ".".join([action, *(str(p) for p in err.absolute_path)])
            code = _RULE_CODE.get(str(err.validator), "PropertyConstraintViolation")
            raise OcppViolation(code, f"{where}: {err.message}", unique_id)


# ------------------------------------------------------------------ key case and dataclass conversion


@cache
def _snake(key: str) -> str:
    return next(iter(camel_to_snake_case({key: None})))


@cache
def _camel(key: str) -> str:
    return next(iter(snake_to_camel_case({key: None})))


def to_snake(obj: Any) -> Any:
    """camelCase keys → snake_case keys, recursively (the ``ocpp`` library's rules, cached per key)."""
    if isinstance(obj, dict):
        return {_snake(k): to_snake(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_snake(v) for v in obj]
    return obj


def to_top_snake(payload: dict[str, Any]) -> dict[str, Any]:
    """camelCase → snake_case for the top-level keys only (handler keyword arguments)."""
    return {_snake(k): v for k, v in payload.items()}


@cache
def _field_names(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, _camel(f.name)) for f in dataclasses.fields(cls))


def to_wire(obj: Any) -> Any:
    """A payload dataclass (or dict/list of them) → JSON-ready camelCase structure, Nones dropped."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for name, camel in _field_names(type(obj)):
            v = getattr(obj, name)
            if v is not None:
                out[camel] = to_wire(v)
        return out
    if isinstance(obj, dict):
        return {_camel(k): to_wire(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [to_wire(v) for v in obj if v is not None]
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj
