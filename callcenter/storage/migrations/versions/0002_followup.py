"""follow-up tasks, callback attempts, notifications

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("followup_done", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_calls_followup_pending", "calls", ["followup_done"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("caller_num", sa.String(64), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("first_missed_at", UTCDateTime, nullable=False),
        sa.Column("last_missed_at", UTCDateTime, nullable=False),
        sa.Column("misses", sa.Integer, nullable=False),
        sa.Column("short_abandon", sa.Boolean, nullable=False),
        sa.Column("deadline", UTCDateTime, nullable=False),
        sa.Column("deadline_provisional", sa.Boolean, nullable=False),
        sa.Column("assignee", sa.String(64)),
        sa.Column("assigned_via", sa.String(16), nullable=False),
        sa.Column("pooled_from_unmapped", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("contacted_at", UTCDateTime),
        sa.Column("closed_at", UTCDateTime),
        sa.Column("closure", sa.String(32)),
        sa.Column("closed_by", sa.String(64)),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index("ux_tasks_one_open", "tasks", ["caller_num", "department"], unique=True,
                    sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
    op.create_index("ix_tasks_deadline", "tasks", ["status", "deadline"])
    op.create_table(
        "task_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("pbx", sa.String(64)),
        sa.Column("call_id", sa.String(64)),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_task_events_task", "task_events", ["task_id"])
    op.create_table(
        "skipped_misses",
        sa.Column("pbx", sa.String(64), primary_key=True),
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("caller_num", sa.String(64), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("why", sa.String(32), nullable=False),
    )
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(128), nullable=False, unique=True),
        sa.Column("task_id", sa.Integer),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(64)),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("answered_at", UTCDateTime),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(8), nullable=False),
        sa.Column("talk_seconds", sa.Float),
        sa.Column("uniqueid", sa.String(64)),
    )
    op.create_index("ix_callback_attempts_task", "callback_attempts", ["task_id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
    )


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("callback_attempts")
    op.drop_table("skipped_misses")
    op.drop_table("task_events")
    op.drop_table("tasks")
    op.drop_index("ix_calls_followup_pending", "calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("followup_done")
