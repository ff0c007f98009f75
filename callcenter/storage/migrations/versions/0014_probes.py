"""hotline probes (issue 13)

The `probes` table: one row per test call placed to a published hotline number
(callcenter/probes/); a scheduled slot is unique per (pbx, hotline, slot), so two instances or a
restart never place the same slot twice.

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

from callcenter.storage.tables import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "probes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("hotline", sa.String(32), nullable=False),
        sa.Column("department", sa.String(64)),
        sa.Column("slot", sa.String(32)),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("placed_at", UTCDateTime, nullable=False),
        sa.Column("answered_at", UTCDateTime),
        sa.Column("answer_seconds", sa.Float),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("uniqueid", sa.String(64)),
    )
    op.create_index("ux_probes_slot", "probes", ["pbx", "hotline", "slot"], unique=True)
    op.create_index("ix_probes_placed", "probes", ["placed_at"])


def downgrade() -> None:
    op.drop_index("ix_probes_placed", "probes")
    op.drop_index("ux_probes_slot", "probes")
    op.drop_table("probes")
