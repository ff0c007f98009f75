"""The panel's notification columns (migration 0010, issue 11): a panel notification is
delivered when a panel showed it, not when it was queued.

A row of channel ``panel`` stays ``queued`` once the channel accepted it (pushed live when a hub
is wired); a panel of its recipient reporting it shown marks it ``sent`` with ``shown_at``; the
recipient's acknowledgement sets ``acked_at`` and ``acked_by`` (the user who acknowledged).
"""
from __future__ import annotations

from sqlalchemy import Column, Index, String

from .base import UTCDateTime
from .followup import notifications

notifications.append_column(Column("shown_at", UTCDateTime))        # first shown by a panel of the recipient
notifications.append_column(Column("acked_at", UTCDateTime))
notifications.append_column(Column("acked_by", String(64)))          # the user who acknowledged
PANEL_COLUMNS = ("shown_at", "acked_at", "acked_by")
Index("ix_notifications_inbox", notifications.c.recipient, notifications.c.channel, notifications.c.acked_at)
