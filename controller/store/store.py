"""The central system's persistence: one ``Store`` over SQLAlchemy 2 (SQLite file by default, PostgreSQL by URL).

Why synchronous and thread-safe rather than async: every write of the running server goes through one
dedicated writer thread (``controller.store.writer.DbWriter``) that batches the frequent, answer-independent
writes (meter values, status, last-seen) into one transaction, so the OCPP read loop never waits on the disk;
the few writes an answer depends on (StartTransaction's id, StopTransaction) run on the same thread, in order,
before the answer is sent. Reads (tests, CLI, load management at start) simply open their own session.

Every query method returns detached ORM rows (``controller.store.models``), oldest first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from controller.store.models import (
    Base,
    ChargePointRow,
    ChargingProfileRow,
    ConnectorRow,
    EventRow,
    IdTagRow,
    MeterValueRow,
    NoResumeRow,
    TransactionRow,
    UTCDateTime,
)


def _sqlite_time(dt: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DateTime stores (naive UTC, microseconds), for the raw bulk path."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


#: ``stop_reason`` of a transaction the store closed because its charger booted while it was open.
REBOOT_CLOSED = "ClosedAtBoot"


@dataclass
class WriteBatch:
    """Answer-independent writes collected by the writer thread and committed together.

    ``connectors`` and ``last_seen`` are keyed so that only the newest value per key is written.
    """

    meter_values: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    connectors: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    last_seen: dict[str, datetime] = field(default_factory=dict)
    cp_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Chargers that went offline: every stored connector status of theirs becomes stale (before the upserts).
    stale_chargers: set[str] = field(default_factory=set)
    #: Charging-profile requests sent and their answers (``charging_profiles`` rows): a limit drop sends one per
    #: connector, and a commit each made the writer thread contend with the event loop for the whole round.
    profiles: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.meter_values)
            + len(self.events)
            + len(self.connectors)
            + len(self.last_seen)
            + len(self.cp_fields)
            + len(self.stale_chargers)
            + len(self.profiles)
        )


class MissingDriver(ArgumentError):
    """The store URL names a database whose Python driver is not installed (an optional extra)."""


def _require_psycopg() -> None:
    """PostgreSQL needs psycopg, an optional extra: say how to get it instead of a bare ModuleNotFoundError."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise MissingDriver(
            "store.url is a PostgreSQL URL but the psycopg driver is not installed: pip install 'evsite[postgres]'"
        ) from None


class Store:
    """Charge points, connectors, id tags, transactions, meter values, charging profiles and the event log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, create: bool = True) -> Store:
        """Open (and by default create the tables of) the store at ``url``.

        ``evsite serve`` migrates an existing store first (``controller.store.migrate.upgrade``); a new one
        is created from the current models and recorded at the newest migration.

        ``sqlite:///file.db`` (WAL journal, so readers never block the writer thread), ``sqlite://`` (memory),
        or ``postgresql+psycopg://user@host/db``.
        """
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        if url.startswith("sqlite"):
            memory = url in ("sqlite://", "sqlite:///:memory:")
            engine = create_engine(
                url,
                connect_args={"check_same_thread": False},
                poolclass=StaticPool if memory else None,
            )

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                if not memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=5000")
                cur.close()
        else:
            if url.startswith("postgresql+psycopg"):
                _require_psycopg()
            engine = create_engine(url, pool_pre_ping=True)
        store = cls(engine)
        if create:
            from sqlalchemy import inspect

            from controller.store.migrate import stamp_created

            empty = not inspect(engine).has_table("charge_points")
            Base.metadata.create_all(engine)
            if empty:  # made from the current models: record that, so migrations start from here
                stamp_created(engine)
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction, committed on success."""
        with self._session() as s, s.begin():
            yield s

    # ----------------------------------------------------------------- reads

    def charge_point(self, cp_id: str) -> ChargePointRow | None:
        with self.session() as s:
            return s.get(ChargePointRow, cp_id)

    def charge_points(self) -> list[ChargePointRow]:
        with self.session() as s:
            return list(s.scalars(select(ChargePointRow).order_by(ChargePointRow.id)))

    def connectors(self, cp_id: str | None = None) -> list[ConnectorRow]:
        with self.session() as s:
            q = select(ConnectorRow).order_by(ConnectorRow.cp_id, ConnectorRow.connector_id)
            if cp_id is not None:
                q = q.where(ConnectorRow.cp_id == cp_id)
            return list(s.scalars(q))

    def id_tag(self, id_tag: str) -> IdTagRow | None:
        with self.session() as s:
            return s.get(IdTagRow, id_tag)

    def id_tags(self) -> list[IdTagRow]:
        with self.session() as s:
            return list(s.scalars(select(IdTagRow).order_by(IdTagRow.id_tag)))

    def transaction(self, transaction_id: int) -> TransactionRow | None:
        with self.session() as s:
            return s.get(TransactionRow, transaction_id)

    def transactions(self, cp_id: str | None = None, open_only: bool = False) -> list[TransactionRow]:
        with self.session() as s:
            q = select(TransactionRow).order_by(TransactionRow.id)
            if cp_id is not None:
                q = q.where(TransactionRow.cp_id == cp_id)
            if open_only:
                q = q.where(TransactionRow.stop_time.is_(None))
            return list(s.scalars(q))

    def meter_values(
        self,
        cp_id: str | None = None,
        transaction_id: int | None = None,
        measurand: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[MeterValueRow]:
        with self.session() as s:
            q = select(MeterValueRow).order_by(MeterValueRow.timestamp, MeterValueRow.id)
            if cp_id is not None:
                q = q.where(MeterValueRow.cp_id == cp_id)
            if transaction_id is not None:
                q = q.where(MeterValueRow.transaction_id == transaction_id)
            if measurand is not None:
                q = q.where(MeterValueRow.measurand == measurand)
            if since is not None:
                q = q.where(MeterValueRow.timestamp >= since)
            if limit is not None:
                q = q.limit(limit)
            return list(s.scalars(q))

    def charging_profiles(self, cp_id: str | None = None) -> list[ChargingProfileRow]:
        with self.session() as s:
            q = select(ChargingProfileRow).order_by(ChargingProfileRow.id)
            if cp_id is not None:
                q = q.where(ChargingProfileRow.cp_id == cp_id)
            return list(s.scalars(q))

    def events(self, cp_id: str | None = None, kind: str | None = None) -> list[EventRow]:
        with self.session() as s:
            q = select(EventRow).order_by(EventRow.id)
            if cp_id is not None:
                q = q.where(EventRow.cp_id == cp_id)
            if kind is not None:
                q = q.where(EventRow.kind == kind)
            return list(s.scalars(q))

    # ---------------------------------------------------------------- writes

    def register_charge_point(
        self, cp_id: str, at: datetime, password_hash: str | None = None, auto_registered: bool = False
    ) -> ChargePointRow:
        """Create the charge point if new; a given ``password_hash`` replaces the stored one."""
        with self.session() as s:
            row = s.get(ChargePointRow, cp_id)
            if row is None:
                row = ChargePointRow(id=cp_id, registered_at=at, auto_registered=auto_registered)
                s.add(row)
            if password_hash is not None:
                row.password_hash = password_hash
            return row

    def upsert_id_tag(
        self, id_tag: str, status: str, expiry_date: datetime | None = None, parent_id_tag: str | None = None
    ) -> None:
        """Add or change a tag through the API (not from the config: a config reload leaves it alone)."""
        with self.session() as s:
            row = s.get(IdTagRow, id_tag) or IdTagRow(id_tag=id_tag)
            row.status, row.expiry_date, row.parent_id_tag = status, expiry_date, parent_id_tag
            row.from_config = False
            s.add(row)

    def sync_config_chargers(self, chargers: list[tuple[str, str | None]], at: datetime) -> list[str]:
        """Make the store follow the config's ``[[chargers]]`` (id, password hash).

        Listed ones are created or updated (a given hash replaces the stored one) and marked ``from_config``;
        ones that came from the config and are no longer listed get ``removed_at`` (refused from then on, their
        history kept). Returns the ids removed now.
        """
        listed = {cp_id: pw for cp_id, pw in chargers}
        with self.session() as s:
            rows = {r.id: r for r in s.scalars(select(ChargePointRow))}
            for cp_id, pw in listed.items():
                row = rows.get(cp_id)
                if row is None:
                    row = ChargePointRow(id=cp_id, registered_at=at, auto_registered=False)
                    s.add(row)
                if pw is not None:
                    row.password_hash = pw
                row.from_config, row.removed_at = True, None
            removed = [r.id for r in rows.values() if r.from_config and r.id not in listed]
            for cp_id in removed:
                rows[cp_id].from_config, rows[cp_id].removed_at = False, at
            return removed

    def sync_config_id_tags(self, tags: list[tuple[str, str, datetime | None, str | None]]) -> list[str]:
        """Make the store follow the config's ``[[id_tags]]`` (id, status, expiry, parent).

        Listed tags are written and marked ``from_config``; tags that came from the config and are no longer
        listed are deleted (so they answer Invalid); tags added through the API are left alone. Returns the
        deleted tags.
        """
        listed = {t[0]: t for t in tags}
        with self.session() as s:
            rows = {r.id_tag: r for r in s.scalars(select(IdTagRow))}
            for tag, status, expiry, parent in listed.values():
                row = rows.get(tag)
                if row is None:
                    row = IdTagRow(id_tag=tag)
                    s.add(row)
                row.status, row.expiry_date, row.parent_id_tag, row.from_config = status, expiry, parent, True
            gone = [t for t, r in rows.items() if r.from_config and t not in listed]
            if gone:
                s.execute(delete(IdTagRow).where(IdTagRow.id_tag.in_(gone)))
            return gone

    def mark_all_offline(self) -> None:
        """At start nothing is connected: what a killed process left ``online`` is not."""
        with self.session() as s:
            s.execute(update(ChargePointRow).where(ChargePointRow.online.is_(True)).values(online=False))

    def record_boot(self, cp_id: str, at: datetime, **fields: Any) -> list[int]:
        """Record a BootNotification; close transactions left open by the previous life of the charger.

        Returns the ids of the transactions closed (``stop_reason = REBOOT_CLOSED``, ``meter_stop`` = the last
        energy register seen for it, else its meter start).
        """
        with self.session() as s:
            row = s.get(ChargePointRow, cp_id)
            if row is None:
                row = ChargePointRow(id=cp_id, registered_at=at, auto_registered=True)
                s.add(row)
            for k, v in fields.items():
                setattr(row, k, v)
            row.last_boot = row.last_seen = at
            open_tx = list(
                s.scalars(
                    select(TransactionRow).where(TransactionRow.cp_id == cp_id, TransactionRow.stop_time.is_(None))
                )
            )
            for tx in open_tx:
                last = s.scalar(
                    select(MeterValueRow.value)
                    .where(
                        MeterValueRow.transaction_id == tx.id,
                        MeterValueRow.measurand == "Energy.Active.Import.Register",
                    )
                    .order_by(MeterValueRow.timestamp.desc(), MeterValueRow.id.desc())
                    .limit(1)
                )
                tx.meter_stop = int(last) if last is not None else tx.meter_start
                tx.stop_time, tx.stop_reason = at, REBOOT_CLOSED
            return [tx.id for tx in open_tx]

    def set_capabilities(self, cp_id: str, capabilities: dict[str, Any]) -> None:
        with self.session() as s:
            s.execute(update(ChargePointRow).where(ChargePointRow.id == cp_id).values(capabilities=capabilities))

    def start_transaction(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        start_time: datetime,
        auth_status: str,
        reservation_id: int | None = None,
    ) -> tuple[int, bool]:
        """Idempotent start: the same (charger, connector, tag, meter start, time) gets the same id.

        Returns ``(transaction_id, created)``.
        """
        with self.session() as s:
            existing = s.scalar(
                select(TransactionRow.id).where(
                    TransactionRow.cp_id == cp_id,
                    TransactionRow.connector_id == connector_id,
                    TransactionRow.id_tag == id_tag,
                    TransactionRow.meter_start == meter_start,
                    TransactionRow.start_time == start_time,
                )
            )
            if existing is not None:
                return existing, False
            tx = TransactionRow(
                cp_id=cp_id,
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start=meter_start,
                start_time=start_time,
                auth_status=auth_status,
                reservation_id=reservation_id,
            )
            s.add(tx)
            s.flush()
            return tx.id, True

    def stop_transaction(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop: int,
        stop_time: datetime,
        reason: str | None,
        id_tag: str | None,
    ) -> tuple[int, bool]:
        """Record a stop. A stop for a transaction we never started is recorded as a new row with
        ``unknown_start=True`` and the charger's id in ``reported_id``; a repeated stop changes nothing.
        The charger's own stop overrides a ``REBOOT_CLOSED`` one. Returns ``(row id, known)``.
        """
        with self.session() as s:
            tx = s.get(TransactionRow, transaction_id)
            if tx is None or tx.cp_id != cp_id:
                dup = s.scalar(
                    select(TransactionRow.id).where(
                        TransactionRow.cp_id == cp_id,
                        TransactionRow.reported_id == transaction_id,
                        TransactionRow.unknown_start.is_(True),
                    )
                )
                if dup is not None:
                    return dup, False
                tx = TransactionRow(
                    cp_id=cp_id,
                    unknown_start=True,
                    reported_id=transaction_id,
                    meter_stop=meter_stop,
                    stop_time=stop_time,
                    stop_reason=reason or "Local",
                    stop_id_tag=id_tag,
                )
                s.add(tx)
                s.flush()
                return tx.id, False
            if tx.stop_time is None or tx.stop_reason == REBOOT_CLOSED:
                tx.meter_stop, tx.stop_time = meter_stop, stop_time
                tx.stop_reason, tx.stop_id_tag = reason or "Local", id_tag
            return tx.id, True

    def add_profile(
        self,
        cp_id: str,
        action: str,
        connector_id: int | None,
        profile: dict[str, Any] | None,
        status: str,
        reason: str | None,
        sent_at: datetime,
        valid_until: datetime | None = None,
    ) -> None:
        """One profile request and its answer; ``valid_until``: when it stops applying, in our clock."""
        with self.session() as s:
            s.add(
                ChargingProfileRow(
                    cp_id=cp_id,
                    action=action,
                    connector_id=connector_id,
                    profile=profile,
                    status=status,
                    reason=reason,
                    sent_at=sent_at,
                    valid_until=valid_until,
                )
            )

    def remember_no_resume(self, id_tag: str, cp_id: str, connector_id: int, at: datetime) -> None:
        """A car that did not resume after a 0 A pause (kept across restarts; the latest sighting wins)."""
        with self.session() as s:
            row = s.get(NoResumeRow, id_tag)
            if row is None:
                s.add(NoResumeRow(id_tag=id_tag, cp_id=cp_id, connector_id=connector_id, seen_at=at))
            else:
                row.cp_id, row.connector_id, row.seen_at = cp_id, connector_id, at

    def no_resume_tags(self) -> list[NoResumeRow]:
        with self.session() as s:
            return list(s.scalars(select(NoResumeRow).order_by(NoResumeRow.id_tag)))

    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        rows = list(events)
        if rows:
            with self.session() as s:
                s.execute(insert(EventRow), rows)

    def write_batch(self, batch: WriteBatch) -> None:
        """Commit a ``WriteBatch`` in one transaction (bulk inserts, one upsert per connector)."""
        with self.session() as s:
            if batch.cp_fields:
                self._bulk_update(s, ChargePointRow, [{"id": k, **v} for k, v in batch.cp_fields.items()])
            if batch.last_seen:
                self._bulk_update(s, ChargePointRow, [{"id": k, "last_seen": v} for k, v in batch.last_seen.items()])
            if batch.stale_chargers:
                s.execute(update(ConnectorRow).where(ConnectorRow.cp_id.in_(batch.stale_chargers)).values(stale=True))
            if batch.connectors:
                self._upsert_connectors(s, list(batch.connectors.values()))
            if batch.meter_values:
                self._bulk_insert(s, MeterValueRow, batch.meter_values)
            if batch.events:
                self._bulk_insert(s, EventRow, batch.events)
            if batch.profiles:
                self._bulk_insert(s, ChargingProfileRow, batch.profiles)

    def _bulk_insert(self, s: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
        """Append rows (every row with the keys of the first); on SQLite straight through the driver's
        executemany (about twice as fast as Core, and this is the write-behind thread's main cost under load),
        elsewhere through Core."""
        if self.engine.dialect.name != "sqlite":
            s.execute(insert(model), rows)
            return
        table = model.__table__
        names = [c.name for c in table.columns if c.name in rows[0]]
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        s.connection().exec_driver_sql(sql, self._driver_params(table, names, rows))

    def _bulk_update(self, s: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
        """Update rows by primary key ``id`` (each row: ``id`` and the columns to set); on SQLite through the
        driver's executemany, one statement per set of columns (the ORM's bulk update by primary key cost
        ~40 % of the writer thread in a reconnect storm: every charger's ``last_seen``), elsewhere the ORM's."""
        if self.engine.dialect.name != "sqlite":
            s.execute(update(model), rows)
            return
        table = model.__table__
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(tuple(k for k in r if k != "id"), []).append(r)
        conn = s.connection()
        for columns, group in groups.items():
            sql = f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?"
            conn.exec_driver_sql(sql, self._driver_params(table, [*columns, "id"], group))

    def _driver_params(self, table: Any, names: list[str], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows as the SQLite driver's parameter tuples, stored as Core would store them: times through
        ``_sqlite_time`` (once per distinct value: the samples of one meter value share a timestamp), JSON
        through the column type's own bind processor."""
        dialect = self.engine.dialect
        times: dict[datetime, str | None] = {}

        def as_text(dt: datetime | None) -> str | None:
            if dt is None:
                return None
            text = times.get(dt)
            if text is None:
                text = times[dt] = _sqlite_time(dt)
            return text

        convert: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(names):
            col_type = table.columns[name].type
            if isinstance(col_type, UTCDateTime):
                convert.append((i, as_text))
            elif isinstance(col_type, JSON):
                convert.append((i, col_type.dialect_impl(dialect).bind_processor(dialect)))
            # text, numbers and booleans go to the driver as they are, as Core sends them
        get = itemgetter(*names)
        if len(names) == 1:
            return [(get(r),) for r in rows] if not convert else [(convert[0][1](get(r)),) for r in rows]
        if not convert:
            return [get(r) for r in rows]
        params: list[tuple[Any, ...]] = []
        for r in rows:
            values = list(get(r))
            for i, f in convert:
                values[i] = f(values[i])
            params.append(tuple(values))
        return params

    def _upsert_connectors(self, s: Session, rows: list[dict[str, Any]]) -> None:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(ConnectorRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["cp_id", "connector_id"],
            set_={
                c: stmt.excluded[c]
                for c in ("status", "error_code", "info", "vendor_error_code", "updated_at", "stale")
            },
        )
        s.execute(stmt, rows)
