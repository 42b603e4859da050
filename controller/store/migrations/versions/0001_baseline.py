"""Baseline: the store's schema before migrations existed (main at 3a552fa).

A database created by that version has these tables and no ``alembic_version``; ``controller.store.migrate``
stamps it at this revision and upgrades from here.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controller.store.models import UTCDateTime

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charge_points",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("vendor", sa.String(20)),
        sa.Column("model", sa.String(20)),
        sa.Column("serial_number", sa.String(25)),
        sa.Column("firmware_version", sa.String(50)),
        sa.Column("firmware_status", sa.String(40)),
        sa.Column("diagnostics_status", sa.String(40)),
        sa.Column("capabilities", sa.JSON()),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("auto_registered", sa.Boolean(), nullable=False),
        sa.Column("registered_at", UTCDateTime()),
        sa.Column("last_boot", UTCDateTime()),
        sa.Column("last_seen", UTCDateTime()),
    )
    op.create_table(
        "charging_profiles",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("cp_id", sa.String(48), nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("connector_id", sa.Integer()),
        sa.Column("profile", sa.JSON()),
        sa.Column("status", sa.String(60), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_charging_profiles_cp_id", "charging_profiles", ["cp_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("cp_id", sa.String(48)),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("data", sa.JSON()),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_cp_id", "events", ["cp_id"])
    op.create_table(
        "id_tags",
        sa.Column("id_tag", sa.String(20), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("expiry_date", UTCDateTime()),
        sa.Column("parent_id_tag", sa.String(20)),
    )
    op.create_table(
        "meter_values",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("cp_id", sa.String(48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.Integer()),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("measurand", sa.String(40), nullable=False),
        sa.Column("value", sa.Float()),
        sa.Column("raw_value", sa.String(100), nullable=False),
        sa.Column("unit", sa.String(20)),
        sa.Column("phase", sa.String(10)),
        sa.Column("context", sa.String(30)),
        sa.Column("location", sa.String(10)),
    )
    op.create_index("ix_meter_values_transaction_id", "meter_values", ["transaction_id"])
    op.create_index("ix_mv_cp_ts", "meter_values", ["cp_id", "timestamp"])
    op.create_table(
        "transactions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("cp_id", sa.String(48), nullable=False),
        sa.Column("connector_id", sa.Integer()),
        sa.Column("id_tag", sa.String(20)),
        sa.Column("auth_status", sa.String(20)),
        sa.Column("reservation_id", sa.Integer()),
        sa.Column("meter_start", sa.Integer()),
        sa.Column("start_time", UTCDateTime()),
        sa.Column("meter_stop", sa.Integer()),
        sa.Column("stop_time", UTCDateTime()),
        sa.Column("stop_reason", sa.String(40)),
        sa.Column("stop_id_tag", sa.String(20)),
        sa.Column("unknown_start", sa.Boolean(), nullable=False),
        sa.Column("reported_id", sa.Integer()),
    )
    op.create_index("ix_transactions_cp_id", "transactions", ["cp_id"])
    op.create_index("ix_tx_idem", "transactions", ["cp_id", "connector_id", "id_tag", "meter_start", "start_time"])
    op.create_table(
        "connectors",
        sa.Column("cp_id", sa.String(48), sa.ForeignKey("charge_points.id"), primary_key=True),
        sa.Column("connector_id", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_code", sa.String(30), nullable=False),
        sa.Column("info", sa.String(50)),
        sa.Column("vendor_error_code", sa.String(50)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("connectors", "transactions", "meter_values", "id_tags", "events", "charging_profiles"):
        op.drop_table(table)
    op.drop_table("charge_points")
