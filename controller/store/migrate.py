"""Store schema migrations (Alembic): ``upgrade(url)`` brings any evsite store to the current schema.

Three starting points, all handled:

- an empty database: every migration runs from the baseline;
- a store created before migrations existed (tables, no ``alembic_version``): stamped at the baseline
  (``0001_baseline``, the schema of that version), then upgraded;
- a migrated store: only the newer migrations run (none when it is current).

``Store.open(create=True)`` on an empty database creates the current tables directly and records ``HEAD``, so
tests and the demo do not pay for Alembic; a test keeps ``HEAD`` equal to the newest migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect, text

#: the newest migration's revision id (tests/controller/test_migrations.py checks it)
HEAD = "0003_lm_memory"
BASELINE = "0001_baseline"
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class UpgradeResult:
    """Revision before and after (``None`` before: empty database; ``"pre-alembic"``: stamped baseline)."""

    before: str | None
    after: str


def _alembic_config(connection: object) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The store's recorded revision, ``"pre-alembic"`` for an unversioned store with tables, None if empty."""
    insp = inspect(engine)
    if insp.has_table("alembic_version"):
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return "pre-alembic" if insp.has_table("charge_points") else None


def upgrade(engine: Engine) -> UpgradeResult:
    """Migrate the store behind ``engine`` to ``head`` (see the module docstring)."""
    from alembic import command

    before = current_revision(engine)
    with engine.begin() as conn:
        cfg = _alembic_config(conn)
        if before == "pre-alembic":
            command.stamp(cfg, BASELINE)  # type: ignore[arg-type]
        command.upgrade(cfg, "head")  # type: ignore[arg-type]
    after = current_revision(engine)
    assert after is not None
    return UpgradeResult(before, after)


def stamp_created(engine: Engine) -> None:
    """Record ``HEAD`` in a database whose tables ``create_all`` just made from the current models."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD})


def script_head() -> str:
    """The newest migration in ``migrations/versions`` (what ``HEAD`` must equal)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
