"""The IVR's own records (migration 0012, issue 12): `ivr_sessions`, one row per finished IVR or
survey session (FastAGI `/ivr` and `/survey`, or the Twilio webhooks), and the follow-up columns
that survey ratings and callback requests add to `tasks`.

A session is keyed by (pbx, uniqueid, script, started_at): `uniqueid` is the caller channel's Uniqueid,
which is the tracked call's id (`calls.id`), so the IVR's records and the AMI events describe
one call. `linked_at` is set once the session was matched with its call (or given up on after
`survey_followup.link_grace_minutes`): then `linkedid`, `case_id` and `task_id` are filled in.
"""
from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, false as sa_false

from .base import UTCDateTime, metadata
from .followup import tasks

ivr_sessions = Table(
    "ivr_sessions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pbx", String(64), nullable=False),
    Column("uniqueid", String(64), nullable=False),              # the caller channel = calls.id
    Column("script", String(16), nullable=False),                # ivr, survey
    Column("linkedid", String(64)),                              # from the tracked call, once linked
    Column("call_found", Boolean, nullable=False, default=False, server_default=sa_false()),
    Column("hotline", String(64), nullable=False, default=""),
    Column("caller_num", String(64), nullable=False, default=""),
    Column("department", String(64)),
    Column("path", Text, nullable=False, default="[]"),          # JSON: the caller's steps, in order
    Column("outcome", String(32), nullable=False, default=""),   # queue, owner, agent, callback_request, closed,
                                                                 # hangup; rated, no_rating, disabled
    Column("route_kind", String(16)),
    Column("route_queue", String(128)),
    Column("route_item", String(255)),
    Column("choice", String(32), nullable=False, default=""),    # menu digits chosen on the way down ("21")
    Column("item", String(255)),                                 # the last service item chosen
    Column("level", Integer, nullable=False, default=0),         # deepest menu level reached (0: none)
    Column("rating", String(16)),                                # satisfied, basic, dissatisfied
    Column("agent", String(64)),                                 # who served the rated call
    Column("queue", String(128)),
    Column("interface", String(255)),
    Column("case_id", Integer),
    Column("task_id", Integer),                                  # the follow-up it opened or marked
    Column("recordings", Text, nullable=False, default="[]"),    # JSON: callback message file names
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("linked_at", UTCDateTime),
    Index("ux_ivr_sessions", "pbx", "uniqueid", "script", "started_at", unique=True),
    Index("ix_ivr_sessions_started", "started_at"),
    Index("ix_ivr_sessions_linked", "linked_at"),
)

# on `tasks`: a dissatisfied rating's follow-up and a callback request's message
tasks.append_column(Column("rectify_deadline", UTCDateTime))     # 整改期限: 5 (simple) or 13 (complex) workdays
tasks.append_column(Column("rectify_kind", String(16)))          # simple, complex
tasks.append_column(Column("case_id", Integer))                  # the rated call's case
tasks.append_column(Column("rated_agent", String(64)))           # the agent the rating is about
tasks.append_column(Column("recording", String(255)))            # the caller's callback message
TASK_COLUMNS = ("rectify_deadline", "rectify_kind", "case_id", "rated_agent", "recording")
