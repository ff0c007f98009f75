"""first-ask cases, their calls and their audit log

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("cases_done", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_calls_cases_pending", "calls", ["cases_done"])
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("caller_num", sa.String(64), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(128)),
        sa.Column("owner", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("item", sa.String(255), nullable=False),
        sa.Column("disposition", sa.String(32)),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("deadline", UTCDateTime),
        sa.Column("deadline_provisional", sa.Boolean, nullable=False),
        sa.Column("closed_at", UTCDateTime),
        sa.Column("resolved_first_contact", sa.Boolean, nullable=False),
        sa.Column("knowledge_gap", sa.Boolean, nullable=False),
        sa.Column("work_order", sa.String(64), nullable=False),
        sa.Column("directed_to", sa.String(255), nullable=False),
    )
    op.create_index("ux_cases_one_open", "cases", ["caller_num", "department"], unique=True,
                    sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
    op.create_index("ix_cases_caller", "cases", ["caller_num", "department", "status"])
    op.create_index("ix_cases_opened", "cases", ["opened_at"])
    op.create_table(
        "case_calls",
        sa.Column("pbx", sa.String(64), primary_key=True),
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agent", sa.String(64)),
        sa.Column("answered_at", UTCDateTime, nullable=False),
        sa.Column("disposition", sa.String(32)),
        sa.Column("disposed_at", UTCDateTime),
    )
    op.create_index("ix_case_calls_case", "case_calls", ["case_id"])
    op.create_index("ix_case_calls_pending", "case_calls", ["agent", "disposition"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id"])


def downgrade() -> None:
    op.drop_table("case_events")
    op.drop_table("case_calls")
    op.drop_table("cases")
    op.drop_index("ix_calls_cases_pending", "calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("cases_done")
