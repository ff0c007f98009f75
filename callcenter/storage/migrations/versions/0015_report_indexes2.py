"""more indexes for the daily report's reads (issue 13, after 0011)

Measured on bench_report.py's database (1,000,000 calls, a 50,000-call day); docs/performance.md:
- `ix_stints_report` gains `agent` (last column; dropped and built again): the per-agent read
  (answered stints and talk time per agent over the day's calls) then reads the stints from the
  index alone, as the stint aggregate already does, instead of one row lookup per answered stint
  (the most expensive of the report's reads without it: 0.2-0.3 s on both databases). The index
  was already about the size of the table; one short column more.
- `ix_task_events_call` (pbx, call_id): the lost calls' callback status looks up the "miss"
  event of each listed call; without it every report read the whole `task_events` table, which
  grows with history (180,000 rows on the benchmark's database).

Revision ID: 0015
Revises: 0014
"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

STINTS_0011 = ["pbx", "call_id", "seq", "queue", "department", "end", "entered_at", "left_at", "answered_at",
               "talk_seconds"]


def upgrade() -> None:
    op.drop_index("ix_stints_report", "stints")
    op.create_index("ix_stints_report", "stints", STINTS_0011 + ["agent"])
    op.create_index("ix_task_events_call", "task_events", ["pbx", "call_id"])


def downgrade() -> None:
    op.drop_index("ix_task_events_call", "task_events")
    op.drop_index("ix_stints_report", "stints")
    op.create_index("ix_stints_report", "stints", STINTS_0011)
