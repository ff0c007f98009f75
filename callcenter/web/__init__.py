"""The HTTP API beside the service: JSON over aiohttp for the agent panel, supervisors and the dialplan.

Owns the web application (`app.init_app`), the server that `App.extras` starts and stops
(`app.WebServer`), the guard every request passes (`security`: who is asking, the route's
policy, CSRF, Origin, JSON bodies), the request models (`models`), what the identity may see
and touch (`scope`), the endpoints (`auth_api`, `tasks_api`, `cases_api`, `coverage_api`) and the
one JSON error shape (`errors`). Views parse the request with a model, check the identity's
scope, call one service method and map its refusals to HTTP errors; all state comes from the
composition root's `App`, nothing is built here.
"""
