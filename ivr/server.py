"""`IvrServer`: the FastAGI server with the IVR routes, as one of the app's extras (started after
the service, stopped before it). Settings: `ivr.fastagi` (host, port, read_timeout,
session_timeout; callcenter/settings_ivr.py); flows: `settings_ivr.flow_for_hotline`. Finished
sessions go to `app.ivr_records` (ivr/records.py) unless `on_finished` says otherwise.

`attach(app)` adds it to a built app (callcenter/bootstrap.py does so for `serve` when the
configuration has an `ivr.fastagi` section; the demo and tests call it with their own port).
"""
from __future__ import annotations

import logging

from .agi_session import IvrAgi
from .fastagi import FastAgiServer

log = logging.getLogger(__name__)
HEADER_SECONDS = 5.0           # Asterisk sends the whole agi_ header at once


class IvrServer:
    def __init__(self, app, host: str | None = None, port: int | None = None, pbx: str | None = None,
                 on_finished=None):
        from callcenter.settings_ivr import flow_for_hotline
        settings = app.settings
        conf = settings.ivr.fastagi
        if on_finished is None and getattr(app, "ivr_records", None) is not None:
            on_finished = app.ivr_records.add          # finished sessions stored with the call (ivr/records.py)
        self.ivr = IvrAgi(app, lambda hotline, pbx_id, department: flow_for_hotline(settings, hotline, pbx_id),
                          pbx or (settings.pbxes[0].id if settings.pbxes else "pbx1"), on_finished)
        self.agi = FastAgiServer(self.ivr.routes(), host or conf.host, conf.port if port is None else port,
                                 header_timeout=min(HEADER_SECONDS, conf.read_timeout),
                                 command_timeout=conf.read_timeout, session_timeout=conf.session_timeout)

    @property
    def port(self) -> int:
        return self.agi.port

    async def start(self) -> None:
        await self.agi.start()

    async def stop(self) -> None:
        await self.agi.stop()


def configured(settings) -> bool:
    """True when the configuration names an `ivr.fastagi` section (then `serve` listens)."""
    ivr = getattr(settings, "ivr", None)
    return ivr is not None and "fastagi" in ivr.model_fields_set


def attach(app, **kw) -> IvrServer:
    server = IvrServer(app, **kw)
    app.extras.append(server)
    app.ivr = server
    return server
