"""panel notifications: shown and acknowledged (issue 11)

`notifications.shown_at`: when a panel of the recipient first showed the message (a panel
row is ``queued`` until then, ``sent`` after); `acked_at`, `acked_by`: the acknowledgement.
Existing panel rows were marked sent when queued: they count as shown then (``shown_at =
sent_at``) and as acknowledged by nobody (``acked_at = sent_at``, ``acked_by = ''``), so a panel
that connects after the upgrade is not flooded with old alerts.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

from callcenter.storage.tables import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN, never a batch copy (see 0008)
    op.add_column("notifications", sa.Column("shown_at", UTCDateTime))
    op.add_column("notifications", sa.Column("acked_at", UTCDateTime))
    op.add_column("notifications", sa.Column("acked_by", sa.String(64)))
    op.execute("UPDATE notifications SET shown_at = sent_at, acked_at = sent_at, acked_by = '' "
               "WHERE channel = 'panel' AND status = 'sent'")
    op.create_index("ix_notifications_inbox", "notifications", ["recipient", "channel", "acked_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_inbox", "notifications")
    op.drop_column("notifications", "acked_by")
    op.drop_column("notifications", "acked_at")
    op.drop_column("notifications", "shown_at")
