"""The agents' side of the service (the BRIEF's `agents/`: the panel and the agent API).

- `desk.py`, `effects.py`: the agent desk (adapter): feeds the server-owned agent state machine
  (callcenter/domain/agent_state.py) from the service's ordered event stream, runs the wrap-up
  timers, carries out agents' requests and deferred pauses/log-outs at the PBX and raises
  pause-over-maximum alarms.
- `live/`: the panel's live push: the hub, the agent and dashboard views, the WebSocket.
- `pages.py`, `templates/`, `static/`: the panel's pages (zh-CN shells) and their scripts.

The REST routes the panel uses live with the rest of the API in callcenter/web/.
"""
