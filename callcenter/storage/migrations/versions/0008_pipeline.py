"""poison calls, row versions for races, leadership (issue 9)

`call_failures`: a call's failed case/follow-up steps, parked after a bounded number of tries.
`cases.version`, `tasks.version`: bumped by every change (compare-and-set); `case_events.version`
and `task_events.version`: the version each event produced, unique per case/task, so the audit
log is one chain. Existing events are numbered in id order and each row's version set to its
event count.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_failures",
        sa.Column("pbx", sa.String(64), primary_key=True),
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(16), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("parked", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("first_failed_at", UTCDateTime, nullable=False),
        sa.Column("last_failed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_call_failures_parked", "call_failures", ["parked"])
    for table, events, key in (("cases", "case_events", "case_id"), ("tasks", "task_events", "task_id")):
        # plain ADD COLUMN, never a batch copy: on SQLite a batch recreates the table, and dropping
        # `cases` or `tasks` would cascade-delete their events
        op.add_column(table, sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("0")))
        op.add_column(events, sa.Column("version", sa.Integer))
        op.execute(f"UPDATE {events} SET version = (SELECT count(*) FROM {events} e2 "
                   f"WHERE e2.{key} = {events}.{key} AND e2.id <= {events}.id)")
        op.execute(f"UPDATE {table} SET version = (SELECT count(*) FROM {events} e "
                   f"WHERE e.{key} = {table}.id)")
        op.create_index(f"ux_{events}_version", events, [key, "version"], unique=True)
    op.create_index("ix_callback_attempts_pending", "callback_attempts", ["result", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_callback_attempts_pending", "callback_attempts")
    for table, events in (("cases", "case_events"), ("tasks", "task_events")):
        op.drop_index(f"ux_{events}_version", events)
        op.drop_column(events, "version")          # plain DROP COLUMN (SQLite 3.35+), no table copy
        op.drop_column(table, "version")
    op.drop_table("call_failures")
