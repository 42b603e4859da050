"""Request and response bodies of the HTTP API (pydantic): what the OpenAPI description at ``/docs`` shows.

Request models forbid unknown fields, so a typo (``conector_id``) is a 422 naming the field, not a silently
ignored value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectorOut(BaseModel):
    connector_id: int
    status: str | None
    error_code: str | None = None
    updated_at: datetime | None = None
    limit_a: float | None = None
    limit_reason: str | None = None
    power_kw: float | None = None


class ChargerOut(BaseModel):
    id: str
    online: bool
    owner: Literal["config", "store"] = Field(description="config.toml ids can only be changed in the file")
    last_seen: datetime | None
    last_boot: datetime | None
    vendor: str | None
    model: str | None
    firmware_version: str | None
    auto_registered: bool
    capabilities: dict[str, Any] | None
    open_transactions: list[int]
    connectors: list[ConnectorOut]
    clock_offset_s: float | None = Field(
        None,
        description="how far the charger's clock is ahead of ours (negative: behind), a lower bound estimated "
        "from the timestamps it sent since it booted; None until one was heard",
    )


class TransactionOut(BaseModel):
    id: int
    cp_id: str
    connector_id: int | None
    id_tag: str | None
    start_time: datetime | None
    stop_time: datetime | None
    meter_start_wh: int | None
    meter_stop_wh: int | None
    energy_kwh: float | None = Field(description="(meter stop - meter start) / 1000; None while open")
    stop_reason: str | None
    open: bool


class MeterValueOut(BaseModel):
    cp_id: str
    connector_id: int
    transaction_id: int | None
    timestamp: datetime
    measurand: str
    value: float | None
    unit: str | None
    phase: str | None


class ProfileOut(BaseModel):
    id: int
    cp_id: str
    action: str
    connector_id: int | None
    profile: dict[str, Any] | None
    status: str = Field(description="the charger's answer (Accepted, Rejected, or the error)")
    reason: str | None = Field(description="why it was sent")
    sent_at: datetime


class EventOut(BaseModel):
    id: int
    at: datetime
    cp_id: str | None
    kind: str
    data: dict[str, Any] | None


class IdTagOut(BaseModel):
    id_tag: str
    status: str
    expiry_date: datetime | None
    parent_id_tag: str | None
    owner: Literal["config", "store"]


class HistoryOut(BaseModel):
    at: list[datetime]
    building_kw: list[float | None]
    ev_kw: list[float]
    limit_kw: list[float]


class CommandResult(BaseModel):
    cp_id: str
    action: str
    result: dict[str, Any] = Field(description="the charger's CALLRESULT payload")


# ---------------------------------------------------------------------- requests


class RemoteStartIn(_Request):
    id_tag: str = Field(min_length=1, max_length=20)
    connector_id: int | None = Field(None, ge=1)


class RemoteStopIn(_Request):
    transaction_id: int


class ResetIn(_Request):
    type: Literal["Soft", "Hard"] = "Soft"


class UnlockIn(_Request):
    connector_id: int = Field(ge=1)


class AvailabilityIn(_Request):
    connector_id: int = Field(0, ge=0, description="0: the whole charger")
    type: Literal["Operative", "Inoperative"]


class TriggerIn(_Request):
    requested_message: Literal[
        "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat",
        "MeterValues", "StatusNotification",
    ]  # fmt: skip
    connector_id: int | None = Field(None, ge=0)


class SiteLimitIn(_Request):
    limit_kw: float = Field(gt=0, description="at most the service's continuous rating")
    minutes: float = Field(gt=0, description="how long it applies")


class DepartureIn(_Request):
    departure_at: datetime = Field(description="when the driver leaves, ISO 8601 with its UTC offset")
    energy_kwh: float | None = Field(None, gt=0, le=500, description="energy the driver wants in this session")


class DepartureOut(BaseModel):
    transaction_id: int
    cp_id: str
    departure_at: datetime
    energy_kwh: float | None
    who: str


class SiteLimitOut(BaseModel):
    limit_kw: float
    expires_at: datetime
    who: str
    continuous_rating_kw: float


class IdTagIn(_Request):
    id_tag: str = Field(min_length=1, max_length=20)
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] = "Accepted"
    expiry_date: datetime | None = Field(None, description="RFC 3339 with a time zone")
    parent_id_tag: str | None = Field(None, max_length=20)


class ChargerIn(_Request):
    id: str = Field(min_length=1, max_length=48, pattern=r"^[^/\s]+$")
    password: str | None = Field(None, min_length=8, description="HTTP Basic password (stored as a hash)")
