"""SQLAlchemy 2 tables of the central system.

Why these shapes: the store must answer "what did this charger report, when, and what did we send it and why"
after a restart. Times are stored as UTC and always come back timezone-aware (``UTCDateTime``): SQLite
has no time zones, and a naive time is a bug waiting for a shift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in, timezone-aware (UTC) out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ChargePointRow(Base):
    __tablename__ = "charge_points"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    vendor: Mapped[str | None] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(20))
    serial_number: Mapped[str | None] = mapped_column(String(25))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    firmware_status: Mapped[str | None] = mapped_column(String(40))
    diagnostics_status: Mapped[str | None] = mapped_column(String(40))
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    auto_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_boot: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set by the offline sweep (``controller.liveness``): false after a disconnect or a heartbeat timeout.
    online: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Listed in the config's ``[[chargers]]``; ``removed_at``: when it left the config (then refused).
    from_config: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: its clock's offset from ours (s, a lower bound, margin taken off) as estimated at ``clock_offset_at``
    #: (``controller.clock_skew``): a restarted controller starts from it instead of knowing nothing
    clock_offset_s: Mapped[float | None] = mapped_column(Float)
    clock_offset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConnectorRow(Base):
    __tablename__ = "connectors"

    cp_id: Mapped[str] = mapped_column(String(48), ForeignKey("charge_points.id"), primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str] = mapped_column(String(30))
    info: Mapped[str | None] = mapped_column(String(50))
    vendor_error_code: Mapped[str | None] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The charger went offline after reporting ``status``: its real state is unknown until it reports again.
    stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class IdTagRow(Base):
    __tablename__ = "id_tags"

    id_tag: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    expiry_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    parent_id_tag: Mapped[str | None] = mapped_column(String(20))
    #: Copied from the config's ``[[id_tags]]`` (follows the config: removed there, deleted here).
    from_config: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TransactionRow(Base):
    """A charging transaction; ``id`` is the transactionId handed to the charger.

    ``unknown_start`` marks a StopTransaction for a transaction we never started (recorded anyway, with the
    charger's id in ``reported_id``); ``stop_reason`` ``EVsiteRebootClosed`` marks one closed because the
    charger booted while it was open.
    """

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cp_id: Mapped[str] = mapped_column(String(48), index=True)
    connector_id: Mapped[int | None] = mapped_column(Integer)
    id_tag: Mapped[str | None] = mapped_column(String(20))
    auth_status: Mapped[str | None] = mapped_column(String(20))
    reservation_id: Mapped[int | None] = mapped_column(Integer)
    meter_start: Mapped[int | None] = mapped_column(Integer)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    meter_stop: Mapped[int | None] = mapped_column(Integer)
    stop_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    stop_id_tag: Mapped[str | None] = mapped_column(String(20))
    unknown_start: Mapped[bool] = mapped_column(Boolean, default=False)
    reported_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_tx_idem", "cp_id", "connector_id", "id_tag", "meter_start", "start_time"),)


class MeterValueRow(Base):
    __tablename__ = "meter_values"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cp_id: Mapped[str] = mapped_column(String(48))
    connector_id: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[int | None] = mapped_column(Integer, index=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    measurand: Mapped[str] = mapped_column(String(40))
    value: Mapped[float | None] = mapped_column(Float)
    raw_value: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str | None] = mapped_column(String(20))
    phase: Mapped[str | None] = mapped_column(String(10))
    context: Mapped[str | None] = mapped_column(String(30))
    location: Mapped[str | None] = mapped_column(String(10))

    __table_args__ = (Index("ix_mv_cp_ts", "cp_id", "timestamp"),)


class ChargingProfileRow(Base):
    """A profile request sent to a charger, why (``reason``), and its answer (``status``)."""

    __tablename__ = "charging_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cp_id: Mapped[str] = mapped_column(String(48), index=True)
    action: Mapped[str] = mapped_column(String(30))
    connector_id: Mapped[int | None] = mapped_column(Integer)
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: when the profile stops applying, in *our* clock (its ``validTo`` is in the charger's own clock, which
    #: may differ from ours; a restarted controller reads this, not ``validTo``)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NoResumeRow(Base):
    """A car (by id tag) that did not resume charging after a 0 A pause: load management gives its sessions
    the minimum current instead of a pause, also after a restart. Where and when it was last seen so."""

    __tablename__ = "no_resume_tags"

    id_tag: Mapped[str] = mapped_column(String(20), primary_key=True)
    cp_id: Mapped[str] = mapped_column(String(48))
    connector_id: Mapped[int] = mapped_column(Integer)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EventRow(Base):
    """The event log: boots, connections, rejections, firmware/diagnostics notices, data transfers."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    cp_id: Mapped[str | None] = mapped_column(String(48), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
