"""the report archive and deliveries (issue 13)

`report_archive`: the rendered daily reports, one row per (report, day, scope, format);
`report_deliveries`: each delivery claimed once (callcenter/storage/schema/reports.py).

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_archive",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("report", sa.String(32), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("as_of", UTCDateTime),
        sa.Column("generated_at", UTCDateTime, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.UniqueConstraint("report", "day", "scope", "format", name="uq_report_archive_day"),
    )
    op.create_index("ix_report_archive_day", "report_archive", ["day"])
    op.create_table(
        "report_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("archive_id", sa.Integer, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
    )
    op.create_index("ix_report_deliveries_day", "report_deliveries", ["day", "status"])


def downgrade() -> None:
    op.drop_index("ix_report_deliveries_day", "report_deliveries")
    op.drop_table("report_deliveries")
    op.drop_index("ix_report_archive_day", "report_archive")
    op.drop_table("report_archive")
