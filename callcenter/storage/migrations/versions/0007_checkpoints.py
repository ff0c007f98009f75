"""open calls and agent sessions checkpointed across restarts (issue 9)

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass                                            # reserved; filled by the work


def downgrade() -> None:
    pass
