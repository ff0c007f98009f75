"""Twilio Voice as a second PBX for the same IVR flow (issue 12): TwiML webhooks instead of FastAGI.

- `ivr.twilio.state`: the flow state each action URL carries (the facts snapshot and the results
  so far; `Session.replay` rebuilds the session at every webhook).
- `ivr.twilio.twiml`: the engine's steps as TwiML (Say zh-CN, Gather, Record, Enqueue, Dial, Hangup).
- `ivr.twilio.events`: Twilio's webhook facts as the normalised events of
  callcenter/domain/events.py (the same CallTracker builds the call record as from AMI).
- `ivr.twilio.calls`: `TwilioIvr`, one call's webhooks (mirrors ivr/agi_session.py).
- `ivr.twilio.web`: the aiohttp routes, X-Twilio-Signature checks, input checks, the listener.
- `ivr.twilio.dialout`: callbacks over Twilio (REST calls.create: the agent, then the caller), the
  Twilio PBX's dialer for callcenter/followup/callbacks.py; their results come back on the webhooks.

Configuration: `ivr.twilio` (callcenter/settings_twilio.py); operations: docs/operations.md
"Connecting Twilio Voice".
"""
from __future__ import annotations


def configured(settings) -> bool:
    """True when `ivr.twilio.enabled` (then `serve` runs the webhook listener)."""
    ivr = getattr(settings, "ivr", None)
    return ivr is not None and ivr.twilio.enabled


def dialers(settings) -> dict:
    """The Twilio PBX's callback dialer (pbx id -> TwilioDialer) when `ivr.twilio.enabled`, else
    none; built without I/O (the REST client is made on the first callback)."""
    if not configured(settings):
        return {}
    from .dialout import TwilioDialer
    return {settings.ivr.twilio.pbx: TwilioDialer(settings)}


def attach(app, on_finished=None, host: str | None = None, port: int | None = None):
    """Add the webhook listener to a built app (an extra: started after the service). Finished IVR
    and survey records go to `on_finished` (default: `app.ivr_records.add`, ivr/records.py, when present)."""
    from .web import TwilioServer
    server = TwilioServer(app, on_finished, host, port)
    app.extras.append(server)
    app.twilio_server = server
    return server
