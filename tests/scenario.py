"""Feed a real trace straight into the pure domain (no sockets): framing, translation, trackers."""
from __future__ import annotations

from datetime import datetime

from callcenter.ami.framing import Framer
from callcenter.ami.server import load_trace, stamp
from callcenter.ami.translate import translate
from callcenter.domain.calls import CallTracker
from callcenter.domain.presence import PresenceTracker
from tests.conftest import trace_path


def run(name: str, settings, at: datetime, pbx: str = "pbx1"):
    from datetime import timedelta
    trace = load_trace(trace_path(name))
    directory = settings.directory()
    calls = CallTracker(directory, settings.hotline_contexts())
    presence = PresenceTracker(directory)
    framer = Framer(expect_banner=False)
    records, sessions, events = [], [], []
    for t, raw in trace.messages:
        for msg in framer.feed(stamp(raw, at + timedelta(seconds=t))):
            event = translate(pbx, msg, at)
            if event is not None:
                events.append(event)
                records += calls.feed(event)
                sessions += presence.feed(event)
    return records, sessions, calls, presence
