"""A/B coverage incidents and guard overrides

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coverage_incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("post", sa.String(64), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime),
        sa.Column("start_of_day", sa.Boolean, nullable=False),
        sa.Column("fallback", sa.String(64), nullable=False),
    )
    op.create_index("ux_coverage_one_open", "coverage_incidents", ["post"], unique=True,
                    sqlite_where=sa.text("closed_at IS NULL"), postgresql_where=sa.text("closed_at IS NULL"))
    op.create_index("ix_coverage_incidents_opened", "coverage_incidents", ["opened_at"])
    op.create_table(
        "coverage_overrides",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("post", sa.String(64), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("refusal", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("coverage_overrides")
    op.drop_table("coverage_incidents")
