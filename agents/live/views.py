"""The view builders of the live panel: an agent's snapshot and a department's head dashboard.

`agent_message(app, agent, now)` is the agent's ``AgentView`` (callcenter/domain/agent_state.py,
through ``app.desk``) and "my posts": each post the agent sits on with its A and B, each one's
state and whether the PBX has them available now. `dashboard_message(app, department, now, today)`
is what the head watches: callers waiting and the longest wait (callcenter/domain/live_calls.py;
the hotline probes' test calls left out: `waiting_callers`), the department's agents with state,
reason and time in state, today's figures (`today`: agents/live/today.py), the A/B posts and open
incidents, overdue tasks and cases, and alarms.
Messages are plain JSON-able dicts; caller names are passed on unaltered (the page escapes them).
"""
from __future__ import annotations

from datetime import datetime, timezone

from callcenter.domain.live_calls import waiting
from callcenter.domain.validation import mask_number

AGENT_KEYS = ("agent", "name", "state", "since", "seconds_in_state", "reason", "pending", "pending_reason",
              "over_max", "wrapup_until")


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat() if moment is not None else None


def agent_view(app, agent: str, now: datetime) -> dict:
    """The agent's view as the desk holds it (agents/desk.py)."""
    return app.desk.states.view(agent, now).to_dict(now)


def seat_of(app, spec, agent: str, views: dict, now: datetime) -> dict:
    seat = app.coverage.seat(spec.pbx, spec.queue, agent)
    view = views.get(agent) or agent_view(app, agent, now)
    views[agent] = view
    return {"agent": agent, "name": view.get("name", agent), "state": view.get("state"),
            "reason": view.get("reason", ""), "since": view.get("since"), "logged_in": seat.logged_in,
            "paused": seat.paused, "available": seat.available}


def posts_of(app, agent: str, now: datetime, views: dict | None = None) -> list[dict]:
    """Each post `agent` sits on: its A and B with their states, who is available now."""
    board = app.coverage.board
    views = {} if views is None else views
    out = []
    for post in sorted(board.by_agent.get(agent, ())):
        spec = board.specs[post]
        a, b = seat_of(app, spec, spec.a, views, now), seat_of(app, spec, spec.b, views, now)
        state = board.state.get(post)
        out.append({"post": post, "department": spec.department, "pbx": spec.pbx, "queue": spec.queue,
                    "state": state.value if state is not None else "closed", "role": "a" if agent == spec.a else "b",
                    "a": a, "b": b, "available": [s["agent"] for s in (a, b) if s["available"]]})
    return out


def agent_message(app, agent: str, now: datetime) -> dict:
    views: dict = {}
    view = agent_view(app, agent, now)
    views[agent] = view
    return {"type": "agent", "agent": agent, "view": view, "posts": posts_of(app, agent, now, views)}


def department_agents(settings, department: str) -> list[str]:
    seen: dict[str, None] = {}
    for p in settings.posts:
        if p.department == department:
            seen.setdefault(p.a)
            seen.setdefault(p.b)
    return list(seen)


def _agent_row(view: dict) -> dict:
    row = {k: view.get(k) for k in AGENT_KEYS}
    call = view.get("call")
    row["call"] = {"queue": call.get("queue"), "since": call.get("since")} if call else None
    return row


def alarms_of(app, department: str, rows: list[dict], posts: list[dict], longest: float | None) -> list[dict]:
    """A post with nobody available in coverage hours, the longest wait over target, a pause
    over its reason's maximum (zh-CN text for the page; the keys for code)."""
    out = []
    for p in posts:
        if p["state"] == "gap":
            out.append({"kind": "post_gap", "post": p["post"], "text": f"岗位 {p['post']} 无人在岗"})
    target = longest_wait_target(app.settings)
    if longest is not None and longest > target:
        out.append({"kind": "longest_wait", "seconds": round(longest), "target": target,
                    "text": f"最长等待 {round(longest)} 秒，超过目标 {target:g} 秒"})
    for r in rows:
        if r.get("over_max"):
            out.append({"kind": "pause_over_max", "agent": r["agent"], "reason": r.get("reason") or "",
                        "text": f"{r.get('name') or r['agent']} 暂停（{r.get('reason') or '未说明'}）超过上限"})
    return out


def longest_wait_target(settings) -> float:
    panel = getattr(settings, "panel", None)
    return float(getattr(panel, "longest_wait_target_seconds", 60))


_BY_DEPARTMENT: dict[int, tuple[object, dict[str, list]]] = {}


def _specs_of(board, department: str) -> list:
    """The board's (post, spec) pairs of one department, grouped once per board."""
    cached = _BY_DEPARTMENT.get(id(board))
    if cached is None or cached[0] is not board.specs:
        grouped: dict[str, list] = {}
        for post, spec in board.specs.items():
            grouped.setdefault(spec.department, []).append((post, spec))
        cached = _BY_DEPARTMENT[id(board)] = (board.specs, grouped)
    return cached[1].get(department, [])


def department_posts(app, department: str) -> list[dict]:
    """The department's A/B posts as GET /api/coverage/live shows them, with who is available."""
    board = app.coverage.board
    out = []
    for post, spec in _specs_of(board, department):
        entry = {"post": post, "department": department, "pbx": spec.pbx, "queue": spec.queue,
                 "state": str(board.state.get(post) or "closed")}
        for role, agent, name in (("a", spec.a, spec.a_name), ("b", spec.b, spec.b_name)):
            seat = app.coverage.seat(spec.pbx, spec.queue, agent)
            entry[role] = {"agent": agent, "name": name, "logged_in": seat.logged_in, "paused": seat.paused,
                           "reachable": seat.reachable, "available": seat.available, "penalty": seat.penalty}
        entry["available"] = [entry[r]["agent"] for r in ("a", "b") if entry[r]["available"]]
        out.append(entry)
    return out


def waiting_callers(app, now: datetime) -> list:
    """Callers waiting in a queue now (callcenter/domain/live_calls.py), the hotline probes' own
    test calls left out (callcenter/probes/: `app.probe_recogniser`)."""
    calls = waiting(app.service.calls, now)
    probe = getattr(app, "probe_recogniser", None)
    if probe is None:
        return calls
    return [w for w in calls if not probe.is_probe_call(w.pbx, w.caller_num, w.call_id, w.uniqueid)]


def masked_copy(message: dict) -> dict:
    """The dashboard with callers' numbers masked (the office's copy; names are not numbers)."""
    calls = [{**c, "caller_num": mask_number(c["caller_num"])} for c in message["waiting"]["calls"]]
    return {**message, "waiting": {**message["waiting"], "calls": calls}}


def dashboard_message(app, department: str, now: datetime, today, masked: bool = False,
                      agents: list[str] | None = None) -> dict:
    """One department's live dashboard. `masked`: callers' numbers masked (the office's copy)."""
    calls = [w.to_dict() for w in waiting_callers(app, now) if w.department == department]
    if masked:
        for c in calls:
            c["caller_num"] = mask_number(c["caller_num"])
    longest = max((c["seconds"] for c in calls), default=None)
    agents = department_agents(app.settings, department) if agents is None else agents
    rows = [_agent_row(agent_view(app, a, now)) for a in agents]
    posts = department_posts(app, department)
    return {
        "type": "dashboard", "department": department,
        "name": app.service.directory.department_names.get(department, department),
        "as_of": iso(now),
        "waiting": {"count": len(calls), "longest_seconds": round(longest, 1) if longest is not None else None,
                    "calls": calls},
        "agents": rows,
        "today": today.figures(department),
        "coverage": {"posts": posts, "open_incidents": today.open_incidents.get(department, 0)},
        "overdue": {"tasks": today.overdue_tasks.get(department, 0), "cases": today.overdue_cases.get(department, 0)},
        "alarms": alarms_of(app, department, rows, posts, longest),
    }


def alarm_keys(app, departments, dept_agents: dict, now: datetime) -> dict[str, tuple]:
    """Per department, what its alarms are about now (kind, post or agent): the ticker pushes a
    dashboard when this changes (a wait passing its target, a pause passing its maximum)."""
    longest: dict[str, float] = {}
    for w in waiting_callers(app, now):
        if w.department is not None:
            longest[w.department] = max(longest.get(w.department, 0.0), w.seconds)
    out = {}
    for d in departments:
        rows = []
        for a in dept_agents.get(d, ()):
            view = app.desk.states.view(a, now)
            rows.append({"agent": a, "name": view.name, "over_max": view.over_max, "reason": view.reason})
        alarms = alarms_of(app, d, rows, department_posts(app, d), longest.get(d))
        out[d] = tuple(sorted((a["kind"], a.get("post") or a.get("agent") or "") for a in alarms))
    return out
