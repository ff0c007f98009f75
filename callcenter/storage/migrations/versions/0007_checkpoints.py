"""open calls and agent sessions checkpointed across restarts; observation windows (issue 9)

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("saved_at", UTCDateTime, nullable=False),
        sa.Column("instance", sa.String(64), nullable=False),
    )
    op.create_table(
        "observation_windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("seen_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime),
    )
    op.create_index("ix_observation_windows_started", "observation_windows", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_observation_windows_started", "observation_windows")
    op.drop_table("observation_windows")
    op.drop_table("checkpoints")
