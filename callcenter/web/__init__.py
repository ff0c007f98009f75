"""The HTTP API beside the service: JSON over aiohttp for the agent panel and supervisors.

Owns the web application (`app.init_app`), the server that `App.extras` starts and stops
(`app.WebServer`), the follow-up task endpoints (`tasks_api`) and the one JSON error shape
(`errors`). Views parse the request, call one FollowUp method and map its refusals to HTTP
errors; all state comes from the composition root's `App`, nothing is built here.
"""
