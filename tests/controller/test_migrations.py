"""Store migrations (Alembic) on SQLite and PostgreSQL: from an empty database, from the schema of the version
before migrations (kept in tests/controller/fixtures/ as that version's DDL), and from a current store."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from controller.store import Store
from controller.store.migrate import HEAD, current_revision, script_head, upgrade
from controller.store.models import Base

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


def _schema_diff(store: Store) -> list:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # SQLite reflects JSON as a generic type and our UTCDateTime as DATETIME: types are compared by name
    return [d for d in diff if not (isinstance(d, list) and d and d[0][0] == "modify_type")]


def test_head_constant_is_the_newest_migration() -> None:
    assert script_head() == HEAD


def test_the_schema_comparison_sees_a_missing_index(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with store.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_tx_idem"))
        assert [d[0] for d in _schema_diff(store)] == ["add_index"]
    finally:
        store.close()


def test_upgrade_from_an_empty_database(store_url: str) -> None:
    store = Store.open(store_url, create=False)
    try:
        assert current_revision(store.engine) is None
        result = upgrade(store.engine)
        assert (result.before, result.after) == (None, HEAD)
        assert _schema_diff(store) == []
        store.register_charge_point("CP1", datetime(2026, 3, 2, tzinfo=UTC))
        assert store.charge_point("CP1") is not None
        assert upgrade(store.engine).before == HEAD  # a second run changes nothing
    finally:
        store.close()


def test_upgrade_from_the_schema_before_migrations_keeps_the_data(store_url: str) -> None:
    store = Store.open(store_url, create=False)
    dialect = store.engine.dialect.name
    ddl = (FIXTURES / f"schema_pre_alembic_{dialect}.sql").read_text()
    try:
        with store.engine.begin() as conn:
            for stmt in ddl.split(";\n"):
                body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--")).strip()
                if body:
                    conn.execute(text(body))
            conn.execute(text("INSERT INTO charge_points (id, auto_registered) VALUES ('OLD-CP', false)"))
            conn.execute(
                text(
                    "INSERT INTO transactions (cp_id, connector_id, id_tag, meter_start, unknown_start) "
                    "VALUES ('OLD-CP', 1, 'TAG', 1000, false)"
                )
            )
        assert current_revision(store.engine) == "pre-alembic"
        result = upgrade(store.engine)
        assert (result.before, result.after) == ("pre-alembic", HEAD)
        assert _schema_diff(store) == []
        old = store.charge_point("OLD-CP")
        assert old is not None and (old.online, old.from_config, old.removed_at) == (False, False, None)
        [tx] = store.transactions(cp_id="OLD-CP")
        assert (tx.meter_start, tx.stop_time) == (1000, None)
    finally:
        store.close()


def test_a_store_created_from_the_models_is_recorded_at_head(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        assert current_revision(store.engine) == HEAD
        assert upgrade(store.engine).before == HEAD
        Store.open(store_url).close()  # reopening an existing store does not restamp
        assert current_revision(store.engine) == HEAD
    finally:
        store.close()


def test_evsite_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run = [sys.executable, "-m", "evsite", "db", "upgrade", "--db", url]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"store {url}: revision {HEAD} (upgraded from empty database)"
    again = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == f"store {url}: revision {HEAD} (already current)"
    bad = subprocess.run([*run[:-1], "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 1 and "cannot migrate the store at 127.0.0.1:1/x" in bad.stderr
    assert "secret" not in bad.stderr
