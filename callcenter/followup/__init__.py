"""Follow-up: turns committed unanswered calls into tasks (durably, restart-safe), closes them
when the caller is reached, runs callbacks and the deadline checks. The rules themselves are
pure (callcenter/domain/tasks.py); this package applies them to the database. `ratings.py`:
the follow-ups of dissatisfied survey ratings and IVR callback requests (issue 12)."""
