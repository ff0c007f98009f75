"""The panel's live push: the hub (topics, coalescing, fan-out), the agent and dashboard views,
today's figures, the WebSocket ``/api/live`` and its REST twins (docs/architecture.md, "The
panel's live push")."""
