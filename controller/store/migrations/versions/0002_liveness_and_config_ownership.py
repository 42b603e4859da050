"""Liveness and config ownership: ``charge_points.online/from_config/removed_at``, ``connectors.stale``,
``id_tags.from_config`` (the offline sweep and config-owned ids).

Existing rows start offline, not stale and not owned by the config; the next start-up's seeding marks the
config's chargers and tags again.

Revision ID: 0002_liveness
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controller.store.models import UTCDateTime

revision = "0002_liveness"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def _flag(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())


def upgrade() -> None:
    with op.batch_alter_table("charge_points") as t:
        t.add_column(_flag("online"))
        t.add_column(_flag("from_config"))
        t.add_column(sa.Column("removed_at", UTCDateTime()))
    with op.batch_alter_table("connectors") as t:
        t.add_column(_flag("stale"))
    with op.batch_alter_table("id_tags") as t:
        t.add_column(_flag("from_config"))


def downgrade() -> None:
    with op.batch_alter_table("id_tags") as t:
        t.drop_column("from_config")
    with op.batch_alter_table("connectors") as t:
        t.drop_column("stale")
    with op.batch_alter_table("charge_points") as t:
        t.drop_column("removed_at")
        t.drop_column("from_config")
        t.drop_column("online")
