"""the report's facts stored with each stint (issue 13's speed target)

A call and its stints are written once and never changed (callcenter/storage/schema/calls.py),
so what the daily report counts each stint by is worked out when it is written, not on every
report: `stints` gains the call's start (`call_started_at`) and after-hours flag
(`call_after_hours`), the wait and talk time in whole microseconds (`wait_us`, `talk_us`) and
`is_last` (the call's last stint); `calls` gains `stint_count`. Existing rows are filled here, in
SQL, with the exact arithmetic the report used until now (SQLite keeps timestamps as text
'YYYY-MM-DD HH:MM:SS.ffffff': seconds and microseconds from the digits, whole days by julianday of
the dates; PostgreSQL: EXTRACT(EPOCH) is a numeric, exact). The expressions are copied here, not
imported, so this migration keeps doing what it did when the report's code changes.

`ix_stints_day` (call_started_at and every column the report reads) replaces `ix_stints_report`
(0011/0015): a day's stints, their groups and the per-agent counts come from one range of one
covering index, with no join to `calls`. `ix_calls_stintless` (partial, stint_count = 0) holds the
calls that never reached a queue (IVR hang-ups, after-hours), about a tenth of the calls.
`ix_agent_sessions_ended_at`: the sessions of a recent day are those ending after its start (the
index on their start read every session of the history before the day's end: 0.09 s of the
report on 317,000 sessions).
Measured on benchmarks/bench_report.py's database (1,000,000 calls; docs/performance.md): the
day's stint statement 0.27 s -> 0.08 s on SQLite; this migration ran there in ~10 s.

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa

from callcenter.storage.tables import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STINTS_DAY = ["call_started_at", "pbx", "queue", "department", "end", "is_last", "call_after_hours", "entered_at",
              "wait_us", "talk_us", "agent"]
CALLS_STINTLESS = ["started_at", "pbx", "ivr_queue", "department", "outcome", "hotline"]
STINTS_0015 = ["pbx", "call_id", "seq", "queue", "department", "end", "entered_at", "left_at", "answered_at",
               "talk_seconds", "agent"]


def _sqlite_micros(later: str, earlier: str) -> str:
    def day_us(x: str) -> str:
        return (f"((CAST(substr({x}, 12, 2) AS INTEGER) * 3600 + CAST(substr({x}, 15, 2) AS INTEGER) * 60"
                f" + CAST(substr({x}, 18, 2) AS INTEGER)) * 1000000 + CAST(substr({x}, 21, 6) AS INTEGER))")
    days = (f"(CASE WHEN substr({later}, 1, 10) = substr({earlier}, 1, 10) THEN 0 ELSE"
            f" CAST(julianday(substr({later}, 1, 10)) - julianday(substr({earlier}, 1, 10)) AS INTEGER) END)")
    return f"({days} * 86400000000 + {day_us(later)} - {day_us(earlier)})"


def upgrade() -> None:
    with op.batch_alter_table("stints", recreate="never") as batch:
        batch.add_column(sa.Column("call_started_at", UTCDateTime))
        batch.add_column(sa.Column("call_after_hours", sa.Boolean))
        batch.add_column(sa.Column("wait_us", sa.BigInteger))
        batch.add_column(sa.Column("talk_us", sa.BigInteger))
        batch.add_column(sa.Column("is_last", sa.Boolean))
    with op.batch_alter_table("calls", recreate="never") as batch:
        batch.add_column(sa.Column("stint_count", sa.Integer, nullable=False, server_default="0"))
    until = "COALESCE(s.answered_at, s.left_at)"
    if op.get_bind().dialect.name == "postgresql":
        wait = f"GREATEST(0, CAST(EXTRACT(EPOCH FROM ({until} - s.entered_at)) * 1000000 AS BIGINT))"
        talk = "COALESCE(CAST(trunc(s.talk_seconds * 1000000 + 0.5) AS BIGINT), 0)"
    else:
        wait = f"max(0, {_sqlite_micros(until, 's.entered_at')})"
        talk = "COALESCE(CAST(s.talk_seconds * 1000000 + 0.5 AS INTEGER), 0)"
    per_call = "(SELECT pbx, call_id, max(seq) AS last_seq, count(*) AS n FROM stints GROUP BY pbx, call_id) AS m"
    op.execute(f"""UPDATE stints AS s SET call_started_at = c.started_at, call_after_hours = c.after_hours,
        wait_us = CASE WHEN {until} IS NULL THEN 0 ELSE {wait} END,
        talk_us = CASE WHEN s.talk_seconds IS NULL OR s.talk_seconds = 0 THEN 0 ELSE {talk} END,
        is_last = (s.seq = m.last_seq)
        FROM calls AS c, {per_call}
        WHERE c.pbx = s.pbx AND c.id = s.call_id AND m.pbx = s.pbx AND m.call_id = s.call_id""")
    op.execute(f"UPDATE calls SET stint_count = m.n FROM {per_call} WHERE m.pbx = calls.pbx AND m.call_id = calls.id")
    op.drop_index("ix_stints_report", "stints")
    op.create_index("ix_stints_day", "stints", STINTS_DAY)
    op.create_index("ix_calls_stintless", "calls", CALLS_STINTLESS, sqlite_where=sa.text("stint_count = 0"),
                    postgresql_where=sa.text("stint_count = 0"))
    op.create_index("ix_agent_sessions_ended_at", "agent_sessions", ["ended_at"])
    if op.get_bind().dialect.name == "postgresql":    # the planner's statistics for the new columns at once
        op.execute("ANALYZE stints")
        op.execute("ANALYZE calls")


def downgrade() -> None:
    op.drop_index("ix_agent_sessions_ended_at", "agent_sessions")
    op.drop_index("ix_calls_stintless", "calls")
    op.drop_index("ix_stints_day", "stints")
    op.create_index("ix_stints_report", "stints", STINTS_0015)
    with op.batch_alter_table("calls", recreate="never") as batch:
        batch.drop_column("stint_count")
    with op.batch_alter_table("stints", recreate="never") as batch:
        for column in ("is_last", "talk_us", "wait_us", "call_after_hours", "call_started_at"):
            batch.drop_column(column)
