"""the PBX's queue_log as a second source: read positions and reconciliation (issue 9)

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_log_positions",
        sa.Column("pbx", sa.String(64), primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("inode", sa.BigInteger, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("queue_log_positions")
