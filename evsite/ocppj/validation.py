"""OCPP 1.6 payload validation against the JSON schema files the ``ocpp`` library ships, compiled once.

Why ``fastjsonschema``: it turns each schema into plain Python code, several times faster than jsonschema, so
validation runs inline on the read loop instead of a thread-pool hop. Its ``multipleOf`` check divides in
``Decimal`` on the value's ``repr`` (so 21.4 is a multiple of 0.1, as the charging-profile schemas require,
where binary float division says it is not): one compiled validator serves both directions and both sides.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any, Literal

import fastjsonschema
import ocpp.v16
from ocpp.v16.enums import Action

from evsite.ocppj.framing import UNKNOWN_ID, OcppViolation

V16_ACTIONS: frozenset[str] = frozenset(a.value for a in Action)
SCHEMA_DIR = os.path.join(os.path.dirname(ocpp.v16.__file__), "schemas")
Kind = Literal["req", "conf"]

_RULE_CODE = {
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "type": "TypeConstraintViolation",
    "additionalProperties": "FormationViolation",
}


@cache
def _compiled(action: str, kind: Kind) -> Any:
    name = action + ("Response" if kind == "conf" else "")
    try:
        with open(os.path.join(SCHEMA_DIR, f"{name}.json"), encoding="utf-8-sig") as f:
            schema = json.load(f)
    except FileNotFoundError:
        return None
    return fastjsonschema.compile(schema)


def validate(action: str, kind: Kind, payload: dict[str, Any], unique_id: str = UNKNOWN_ID) -> None:
    """Check a request (``kind="req"``) or response (``"conf"``) payload against the OCPP 1.6 schema.

    Raises ``OcppViolation`` with the §4.2.3 code and the field's path (``BootNotification.chargePointVendor``).
    """
    fn = _compiled(action, kind)
    if fn is None:
        raise OcppViolation("NotImplemented", f"{action!r} is not an OCPP 1.6 action", unique_id)
    try:
        fn(payload)
    except fastjsonschema.JsonSchemaValueException as e:
        where = e.name.replace("data", action, 1)
        code = _RULE_CODE.get(e.rule or "", "PropertyConstraintViolation")
        raise OcppViolation(code, f"{where}: {e.message.replace(e.name, '').strip()}", unique_id) from None
