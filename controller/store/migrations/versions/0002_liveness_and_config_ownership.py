"""Liveness and config ownership: chargers' online flag, connectors' stale status, rows owned by config.toml.

- ``charge_points.online``: set by the heartbeat-timeout sweep and by connection events.
- ``connectors.stale``: the last status is older than the charger's liveness (it went offline).
- ``charge_points.from_config`` / ``id_tags.from_config``: the row mirrors ``config.toml`` and follows it
  (removed or blocked there means refused at once); ``charge_points.removed_at``: removed from the config.

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


def upgrade() -> None:
    with op.batch_alter_table("charge_points") as batch:
        batch.add_column(sa.Column("online", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("from_config", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("removed_at", UTCDateTime(timezone=True)))
    with op.batch_alter_table("connectors") as batch:
        batch.add_column(sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("id_tags") as batch:
        batch.add_column(sa.Column("from_config", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("id_tags") as batch:
        batch.drop_column("from_config")
    with op.batch_alter_table("connectors") as batch:
        batch.drop_column("stale")
    with op.batch_alter_table("charge_points") as batch:
        batch.drop_column("removed_at")
        batch.drop_column("from_config")
        batch.drop_column("online")
