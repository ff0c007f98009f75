"""calls, stints and agent sessions

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("pbx", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("caller_num", sa.String(64), nullable=False),
        sa.Column("caller_name", sa.String(255), nullable=False),
        sa.Column("hotline", sa.String(64), nullable=False),
        sa.Column("department", sa.String(64)),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("ivr_choice", sa.String(32), nullable=False),
        sa.Column("ivr_queue", sa.String(128), nullable=False),
        sa.Column("after_hours", sa.Boolean, nullable=False),
        sa.Column("reconciled", sa.Boolean, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_caller", "calls", ["caller_num", "department"])
    op.create_table(
        "stints",
        sa.Column("pbx", sa.String(64), primary_key=True),
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("department", sa.String(64)),
        sa.Column("entered_at", UTCDateTime, nullable=False),
        sa.Column("left_at", UTCDateTime),
        sa.Column("answered_at", UTCDateTime),
        sa.Column("end", sa.String(32), nullable=False),
        sa.Column("agent", sa.String(64)),
        sa.Column("member_name", sa.String(255), nullable=False),
        sa.Column("interface", sa.String(255), nullable=False),
        sa.Column("talk_seconds", sa.Float),
        sa.Column("completed_by", sa.String(32), nullable=False),
        sa.Column("transferred", sa.Boolean, nullable=False),
        sa.Column("rings", sa.Integer, nullable=False),
        sa.Column("no_answers", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["pbx", "call_id"], ["calls.pbx", "calls.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_stints_entered_at", "stints", ["entered_at"])
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(64)),
        sa.Column("interface", sa.String(255), nullable=False),
        sa.Column("member_name", sa.String(255), nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime, nullable=False),
        sa.Column("reconciled", sa.Boolean, nullable=False),
    )
    op.create_index("ux_agent_sessions", "agent_sessions",
                    ["pbx", "interface", "queue", "kind", "started_at"], unique=True)
    op.create_index("ix_agent_sessions_started_at", "agent_sessions", ["started_at"])


def downgrade() -> None:
    op.drop_table("agent_sessions")
    op.drop_table("stints")
    op.drop_table("calls")
