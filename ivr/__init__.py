"""The callers' IVR on Asterisk: a FastAGI server of our own and the adapter that walks one caller
through the flow engine over it.

- `ivr.agi_protocol`: the AGI wire format without I/O: safe quoting of arguments (refused, never
  sent, when a value could break the line), answers (including the multi-line 520 usage), the agi_
  environment and the request path's query (`ivr?hotline=...`).
- `ivr.fastagi`: the FastAGI server on asyncio streams: header, command and session deadlines,
  hang-ups (HANGUP, 511, result=-1 confirmed with CHANNEL STATUS), routing of request paths to
  async or plain handlers. No knowledge of calls or flows.
- `ivr.agi_session`: one caller: reads the facts (business hours, owner routing, coverage
  fallback) through the app, then drives `callcenter.domain.ivr_flow` and carries out its steps as
  AGI commands (`/ivr` and `/survey`).
- `ivr.server`: `IvrServer`, the app extra that runs it (`serve` with an `ivr.fastagi` section).
- `ivr.records`: `app.ivr_records`: every finished session stored (`ivr_sessions`), held and
  spooled while the database is away; `ivr.links`: each linked to its tracked call and acted on
  (survey follow-ups, callback requests).

The flow itself (pure) is `callcenter/domain/ivr_flow.py`; its configuration
`callcenter/settings_ivr.py`; the dialplan that calls this server `callcenter/asterisk_config.py`.
"""
