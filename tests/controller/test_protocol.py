"""The pure OCPP-J layer: frame parsing, validation codes, key conversion, meter summaries (no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ocpp.v16 import call, call_result, datatypes

from controller.ocpp.session import parse_time, rfc3339, summarize_meter_value
from evsite.ocppj.framing import CallFrame, ErrorFrame, OcppViolation, ResultFrame, parse_frame
from evsite.ocppj.payloads import to_snake, to_top_snake, to_wire
from evsite.ocppj.validation import validate

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('[2,"a","Heartbeat",{}]', CallFrame("a", "Heartbeat", {})),
        ('[3,"b",{"currentTime":"x"}]', ResultFrame("b", {"currentTime": "x"})),
        ('[4,"c","NotSupported","no",{"k":1}]', ErrorFrame("c", "NotSupported", "no", {"k": 1})),
        ('[4,"c","GenericError","no",null]', ErrorFrame("c", "GenericError", "no", {})),
        (b'[2,"d","Heartbeat",{}]', CallFrame("d", "Heartbeat", {})),
    ],
)
def test_parse_frame_accepts_the_three_message_types(raw: str | bytes, expected: object) -> None:
    assert parse_frame(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "unique_id", "reply"),
    [
        ("[2,", "FormationViolation", "-1", True),
        ("42", "FormationViolation", "-1", True),
        ("[]", "ProtocolError", "-1", True),
        ('[2,{"id":1},"Heartbeat",{}]', "FormationViolation", "-1", True),
        ('[2,"u","Heartbeat",{},{}]', "ProtocolError", "u", True),
        ('[2,"u",7,{}]', "FormationViolation", "u", True),
        ('["2","u","Heartbeat",{}]', "ProtocolError", "u", True),
        ('[3,"u"]', "ProtocolError", "u", False),  # a broken answer is logged, never answered
        ('[4,"u",1,"x",{}]', "ProtocolError", "u", False),
    ],
)
def test_parse_frame_defects(raw: str, code: str, unique_id: str, reply: bool) -> None:
    with pytest.raises(OcppViolation) as err:
        parse_frame(raw)
    assert (err.value.code, err.value.unique_id, err.value.reply) == (code, unique_id, reply)
    assert err.value.to_json().startswith(f'[4,"{unique_id}","{code}",')


@pytest.mark.parametrize(
    ("action", "kind", "payload", "code"),
    [
        ("Heartbeat", "req", {}, None),
        ("MadeUp", "req", {}, "NotImplemented"),
        ("Authorize", "req", {}, "OccurenceConstraintViolation"),
        ("Authorize", "req", {"idTag": 5}, "TypeConstraintViolation"),
        ("Authorize", "req", {"idTag": "X" * 21}, "PropertyConstraintViolation"),
        ("Authorize", "req", {"idTag": "A", "foo": 1}, "FormationViolation"),
        ("Reset", "conf", {"status": "Maybe"}, "PropertyConstraintViolation"),
        ("GetCompositeSchedule", "conf", {"status": "Accepted", "chargingSchedule": {"chargingRateUnit": "A",
         "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.25}]}}, "PropertyConstraintViolation"),
        ("GetCompositeSchedule", "conf", {"status": "Accepted", "chargingSchedule": {"chargingRateUnit": "A",
         "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]}}, None),
    ],
)  # fmt: skip
def test_validate_maps_schema_failures_to_ocpp_error_codes(
    action: str, kind: str, payload: dict, code: str | None
) -> None:
    if code is None:
        validate(action, kind, payload)
        return
    with pytest.raises(OcppViolation) as err:
        validate(action, kind, payload, "id-9")
    assert (err.value.code, err.value.unique_id) == (code, "id-9")
    assert action in err.value.description


def test_to_wire_drops_nones_camelcases_and_handles_nested_dataclasses() -> None:
    profile = datatypes.ChargingProfile(
        charging_profile_id=1,
        stack_level=0,
        charging_profile_purpose="TxProfile",
        charging_profile_kind="Absolute",
        charging_schedule=datatypes.ChargingSchedule(
            charging_rate_unit="W",
            charging_schedule_period=[datatypes.ChargingSchedulePeriod(start_period=0, limit=7400.0)],
        ),
        transaction_id=12,
    )
    assert to_wire(call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile)) == {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.0}],
            },
            "transactionId": 12,
        },
    }
    assert to_wire(
        call_result.StartTransaction(transaction_id=3, id_tag_info={"status": "Accepted", "parent_id_tag": "P"})
    ) == {
        "transactionId": 3,
        "idTagInfo": {"status": "Accepted", "parentIdTag": "P"},
    }


def test_snake_case_conversion_deep_and_top_level() -> None:
    payload = {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1"}]}]}
    assert to_snake(payload) == {"connector_id": 1, "meter_value": [{"sampled_value": [{"value": "1"}]}]}
    assert to_top_snake(payload) == {"connector_id": 1, "meter_value": [{"sampledValue": [{"value": "1"}]}]}


@pytest.mark.parametrize(
    ("samples", "power_w", "current_a", "energy_wh", "soc"),
    [
        ([{"value": "1500"}], None, None, 1500.0, None),  # default measurand: the energy register in Wh
        ([{"value": "2.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"}], None, None, 2500.0, None),
        ([{"value": "3.7", "measurand": "Power.Active.Import", "unit": "kW", "phase": p} for p in ("L1", "L2", "L3")]
         + [{"value": "0.1", "measurand": "Power.Active.Import", "unit": "kW", "phase": "N"}],
         11100.0, None, None, None),
        ([{"value": "11000", "measurand": "Power.Active.Import"},
          {"value": "3700", "measurand": "Power.Active.Import", "phase": "L1"}], 11000.0, None, None, None),
        ([{"value": "0", "measurand": "Power.Active.Import", "unit": "W"},
          {"value": "3.3", "measurand": "Power.Active.Export", "unit": "kW"}], -3300.0, None, None, None),
        ([{"value": "1200", "measurand": "Power.Active.Import"},
          {"value": "200", "measurand": "Power.Active.Export"}], 1000.0, None, None, None),
        ([{"value": "16", "measurand": "Current.Import", "phase": "L1"},
          {"value": "15.5", "measurand": "Current.Import", "phase": "L2"}], None, 16.0, None, None),
        ([{"value": "80", "measurand": "SoC", "unit": "Percent"}, {"value": "n/a", "measurand": "Voltage"}],
         None, None, None, 80.0),
    ],
)  # fmt: skip
def test_meter_summary(samples: list[dict], power_w: float | None, current_a: float | None,
                       energy_wh: float | None, soc: float | None) -> None:  # fmt: skip
    event, rows = summarize_meter_value(
        "CP", 2, 7, {"timestamp": "2026-03-02T09:00:00+01:00", "sampledValue": samples}, NOW
    )
    assert (event.power_w, event.current_a, event.energy_wh, event.soc_pct) == (power_w, current_a, energy_wh, soc)
    assert event.at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert len(rows) == len(samples) and {r["transaction_id"] for r in rows} == {7}


def test_times_are_rfc3339_with_a_zone() -> None:
    assert rfc3339(NOW) == "2026-03-02T08:00:00.000Z"
    assert parse_time("2026-03-02T08:00:00", NOW).tzinfo is not None  # a zoneless time is taken as UTC
    assert parse_time(None, NOW) == NOW
