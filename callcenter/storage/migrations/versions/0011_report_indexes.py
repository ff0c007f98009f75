"""indexes for the daily report's reads (issue 13)

The report counts a day with SQL aggregates and reads the follow-up tasks, cases and pending
wrap-ups of that day. Two covering indexes let it count a day's calls and their stints from
indexes alone (on SQLite, 2-3x faster than fetching each stint's row; they cost ingest a few
index writes per call and about the size of the stints table on disk):
- `ix_calls_day` (started_at, pbx, id and the columns that place a call without a stint):
  the calls of a day, in one range scan;
- `ix_stints_report` (pbx, call_id, seq and every column the report reads).
Without the others each of the report's reads scanned its whole table:
- tasks first missed or closed in the day (`ix_tasks_first_missed`, `ix_tasks_closed`);
- cases closed or due in the day, open ones past their deadline (`ix_cases_closed`,
  `ix_cases_deadline`, `ix_cases_status_deadline`; `ix_cases_opened` exists);
- answered calls without a disposition (`ix_case_calls_wrapup`).

Revision ID: 0011
Revises: 0010
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_calls_day", "calls", ["started_at", "pbx", "id", "after_hours", "outcome", "department", "hotline",
                               "ivr_queue"]),
    ("ix_stints_report", "stints", ["pbx", "call_id", "seq", "queue", "department", "end", "entered_at", "left_at",
                                    "answered_at", "talk_seconds"]),
    ("ix_tasks_first_missed", "tasks", ["first_missed_at"]),
    ("ix_tasks_closed", "tasks", ["closed_at"]),
    ("ix_cases_closed", "cases", ["closed_at"]),
    ("ix_cases_deadline", "cases", ["deadline"]),
    ("ix_cases_status_deadline", "cases", ["status", "deadline"]),
    ("ix_case_calls_wrapup", "case_calls", ["disposition", "answered_at"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table)
