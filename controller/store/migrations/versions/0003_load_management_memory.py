"""What load management remembers across restarts: live profiles' expiry in our clock, each charger's clock
offset, cars that do not resume after a pause.

- ``charging_profiles.valid_until``: when a profile stops applying, in the controller's clock. Its ``validTo``
  is written in the charger's own clock (``controller.clock_skew``), so a restarted controller must not read it
  as ours. Rows from before this migration have none; their ``validTo`` was written in our clock.
- ``charge_points.clock_offset_s`` / ``clock_offset_at``: the charger's clock offset (a lower bound) and when it
  was estimated, so a restarted controller writes ``validTo`` in its clock before it hears a new timestamp.
- ``no_resume_tags``: id tags whose car did not resume charging after a 0 A pause (load management gives their
  sessions the minimum current instead of a pause), with where and when that was last seen.

Revision ID: 0003_lm_memory
Revises: 0002_liveness
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controller.store.models import UTCDateTime

revision = "0003_lm_memory"
down_revision = "0002_liveness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("charging_profiles") as batch:
        batch.add_column(sa.Column("valid_until", UTCDateTime(timezone=True)))
    with op.batch_alter_table("charge_points") as batch:
        batch.add_column(sa.Column("clock_offset_s", sa.Float()))
        batch.add_column(sa.Column("clock_offset_at", UTCDateTime(timezone=True)))
    op.create_table(
        "no_resume_tags",
        sa.Column("id_tag", sa.String(20), primary_key=True),
        sa.Column("cp_id", sa.String(48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("no_resume_tags")
    with op.batch_alter_table("charge_points") as batch:
        batch.drop_column("clock_offset_at")
        batch.drop_column("clock_offset_s")
    with op.batch_alter_table("charging_profiles") as batch:
        batch.drop_column("valid_until")
