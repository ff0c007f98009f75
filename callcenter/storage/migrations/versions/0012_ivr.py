"""IVR sessions and survey ratings (issue 12)

`ivr_sessions`: one row per finished IVR or survey session, keyed by (pbx, uniqueid, script, started_at) (a transferred caller walks a second IVR on the same channel);
linked to the tracked call (calls.id = the caller channel's Uniqueid) once that is stored.
`tasks` gains the follow-up facts of a dissatisfied rating (rectification deadline and kind, the
case, the rated agent) and a callback request's recording (plain ADD COLUMN: never a batch copy,
which would cascade-delete task_events on SQLite, see 0008).

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

from callcenter.storage.tables import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TASK_COLUMNS = [("rectify_deadline", UTCDateTime), ("rectify_kind", sa.String(16)), ("case_id", sa.Integer),
                ("rated_agent", sa.String(64)), ("recording", sa.String(255))]


def upgrade() -> None:
    op.create_table(
        "ivr_sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("uniqueid", sa.String(64), nullable=False),
        sa.Column("script", sa.String(16), nullable=False),
        sa.Column("linkedid", sa.String(64)),
        sa.Column("call_found", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("hotline", sa.String(64), nullable=False),
        sa.Column("caller_num", sa.String(64), nullable=False),
        sa.Column("department", sa.String(64)),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("route_kind", sa.String(16)),
        sa.Column("route_queue", sa.String(128)),
        sa.Column("route_item", sa.String(255)),
        sa.Column("choice", sa.String(32), nullable=False),
        sa.Column("item", sa.String(255)),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("rating", sa.String(16)),
        sa.Column("agent", sa.String(64)),
        sa.Column("queue", sa.String(128)),
        sa.Column("interface", sa.String(255)),
        sa.Column("case_id", sa.Integer),
        sa.Column("task_id", sa.Integer),
        sa.Column("recordings", sa.Text, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime, nullable=False),
        sa.Column("stored_at", UTCDateTime, nullable=False),
        sa.Column("linked_at", UTCDateTime),
    )
    op.create_index("ux_ivr_sessions", "ivr_sessions", ["pbx", "uniqueid", "script", "started_at"], unique=True)
    op.create_index("ix_ivr_sessions_started", "ivr_sessions", ["started_at"])
    op.create_index("ix_ivr_sessions_linked", "ivr_sessions", ["linked_at"])
    for name, kind in TASK_COLUMNS:
        op.add_column("tasks", sa.Column(name, kind))


def downgrade() -> None:
    for name, _ in reversed(TASK_COLUMNS):
        op.drop_column("tasks", name)
    op.drop_index("ix_ivr_sessions_linked", "ivr_sessions")
    op.drop_index("ix_ivr_sessions_started", "ivr_sessions")
    op.drop_index("ux_ivr_sessions", "ivr_sessions")
    op.drop_table("ivr_sessions")
