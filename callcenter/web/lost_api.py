"""Lost calls for the head dashboard (``GET /api/lost-calls`` and its CSV export) and a caller's
history for the ringing panel (``GET /api/callers/{number}/history``; the number in canonical
form, callcenter/domain/numbers.py, so +8613800000001 is 13800000001's history).

A lost call is a call of the day that ended unanswered (abandoned in a queue, timed out, no agent,
hung up in the IVR, after hours; short abandons flagged), as the follow-up decides it
(callcenter/domain/tasks.py), with the follow-up task its miss joined (id, status, assignee,
deadline, overdue, attempts) or why it has none (a short abandon or withheld number the
configuration does not follow up). ``status=open`` (the default) lists those not yet handled:
task still open, or not yet processed. Heads see their departments, the office every one
(callers' numbers masked); agents are refused (403: their own work is ``/api/tasks``).

The CSV is UTF-8 with a byte-order mark (Excel opens the Chinese correctly), zh-CN headers, numbers
masked as in the JSON, and every cell that starts with ``= + - @`` (or a tab or CR) prefixed with
``'`` so a spreadsheet never runs a caller name as a formula.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import and_, select

from ..domain import access, numbers, validation
from ..domain import tasks as rules
from ..domain.records import StintEnd
from ..followup.service import policy_from
from ..storage import tables as t
from . import models
from .app import APP
from .errors import ApiError, json_response
from .scope import agent_departments, list_departments, masked
from .security import identity

REASONS = tuple(r.value for r in (rules.Reason.ABANDONED, rules.Reason.IVR_ABANDONED, rules.Reason.TIMED_OUT,
                                  rules.Reason.NO_AGENT, rules.Reason.AFTER_HOURS))
REASON_ZH = {"abandoned": "排队放弃", "ivr_abandoned": "IVR挂机", "timed_out": "排队超时", "no_agent": "无人值守",
             "after_hours": "非工作时间"}
OUTCOME_ZH = {"answered": "已接通", "transferred": "已转接", "abandoned": "排队放弃", "abandoned_ivr": "IVR挂机",
              "timed_out": "排队超时", "no_agent": "无人值守", "after_hours": "非工作时间", "unknown": "未知"}
SKIPPED_ZH = {"short_abandon": "短放弃，不建回访任务", "withheld_number": "未显示号码，无法回访"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
HISTORY_CALLS = 10


class LostQuery(models.DayQuery):
    department: models.Ident = None
    status: Literal["open", "all"] = "open"
    reason: Literal["abandoned", "ivr_abandoned", "timed_out", "no_agent", "after_hours", "short_abandon"] = None
    limit: models.Limit = None


class HistoryQuery(models.Model):
    limit: models.Limit = None


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/lost-calls", lost_json)
    app.router.add_get("/api/lost-calls.csv", lost_csv)
    app.router.add_get("/api/callers/{number}/history", caller_history)


# --- lost calls -------------------------------------------------------------------------------

async def lost_calls(request: web.Request) -> tuple[str, list[dict]]:
    """The day (ISO) and its lost calls the signed-in head or office may see, filtered, masked."""
    app_obj = request.app[APP]
    who = identity(request)
    q = models.query(LostQuery, request.query)
    settings = app_obj.settings
    tz = ZoneInfo(settings.timezone)
    today = app_obj.clock.now().astimezone(tz).date()
    start, end = q.bounds(tz, today)
    wanted = list_departments(who, q.department)
    records = await app_obj.store.calls_between(start, end)
    policy = policy_from(settings)
    directory = app_obj.followup.directory
    lost = [(r, m) for r in records if (m := rules._miss_of(r, policy)) is not None]
    tasks, skips = await _links(app_obj, [(r.pbx, r.id) for r, _ in lost])
    rows = []
    for record, miss in lost:
        task, skip = tasks.get((record.pbx, record.id)), skips.get((record.pbx, record.id))
        department = (task or skip or {}).get("department") or rules._department_of_miss(
            record, record.stints[-1] if record.stints else None, directory.department_of_queue
        ) or settings.service_office
        if None not in wanted and department not in wanted:
            continue
        handled = skip is not None or (task is not None and task["status"] != "open")
        if q.status == "open" and handled:
            continue
        if not reason_matches(q.reason, miss):
            continue
        last = record.stints[-1] if record.stints else None
        row = {
            "pbx": record.pbx, "call_id": record.id, "linkedid": record.linkedid,
            "started_at": record.started_at.astimezone(tz).isoformat(),
            "missed_at": miss.at.astimezone(tz).isoformat(),
            "caller_num": record.caller_num, "caller_name": record.caller_name, "withheld": record.withheld,
            "hotline": record.hotline, "department": department,
            "department_name": directory.department_names.get(department), "queue": miss.queue,
            "ivr_choice": record.ivr_choice, "reason": miss.reason.value, "short_abandon": miss.short,
            "wait_seconds": None if last is None or last.wait_seconds is None else round(last.wait_seconds, 1),
            "handled": handled, "skipped": skip["why"] if skip else None,
            "task": None if task is None else {k: task[k] for k in (
                "id", "status", "assignee", "assignee_name", "deadline", "overdue", "attempts", "misses",
                "closure", "closed_at")},
        }
        rows.append(masked(who, row, department, task["assignee"] if task else None))
    return (q.date or today).isoformat(), rows[:q.limit or 1000]


def reason_matches(reason: str | None, miss: rules.Miss) -> bool:
    """``short_abandon``: the flagged short abandons; a reason: the misses of that reason."""
    if reason is None:
        return True
    return miss.short if reason == "short_abandon" else miss.reason.value == reason


async def _links(app_obj, calls: list[tuple[str, str]]) -> tuple[dict, dict]:
    """(pbx, call id) -> the task its miss joined (as the follow-up shows it), and -> its skip."""
    e, s = t.task_events.c, t.skipped_misses.c
    task_of: dict[tuple[str, str], int] = {}
    skips: dict[tuple[str, str], dict] = {}
    rows_by_id: dict[int, object] = {}
    async with app_obj.store.engine.connect() as conn:
        for pbx in sorted({p for p, _ in calls}):
            ids = [c for p, c in calls if p == pbx]
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for row in (await conn.execute(select(e.task_id, e.call_id).where(
                        e.kind == "miss", e.pbx == pbx, e.call_id.in_(chunk)))).all():
                    task_of[(pbx, row.call_id)] = row.task_id
                for row in (await conn.execute(select(t.skipped_misses).where(
                        s.pbx == pbx, s.call_id.in_(chunk)))).mappings().all():
                    skips[(pbx, row["call_id"])] = dict(row)
        task_ids = sorted(set(task_of.values()))
        for i in range(0, len(task_ids), 500):
            for row in (await conn.execute(select(t.tasks).where(
                    t.tasks.c.id.in_(task_ids[i:i + 500])))).mappings().all():
                rows_by_id[row["id"]] = row
    as_dict = app_obj.followup._task_dict
    tasks = {key: as_dict(rows_by_id[task_id]) for key, task_id in task_of.items() if task_id in rows_by_id}
    return tasks, skips


async def lost_json(request: web.Request) -> web.Response:
    day, rows = await lost_calls(request)
    return json_response({"date": day, "lost_calls": rows})


CSV_COLUMNS = ["来电时间", "来电号码", "主叫名称", "热线号码", "部门", "队列", "未接原因", "短放弃", "等待秒数",
               "IVR选择", "回访任务", "任务状态", "责任人", "处理时限", "是否超期", "回访次数", "处理情况"]


def guard_cell(value) -> str:
    """A cell as text; one a spreadsheet would read as a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_row(row: dict, tz: ZoneInfo) -> list[str]:
    task = row["task"] or {}
    local = row["started_at"][:19].replace("T", " ")          # already local time
    deadline = f"{datetime.fromisoformat(task['deadline']).astimezone(tz):%Y-%m-%d %H:%M}" if task else ""
    if row["skipped"]:
        state = SKIPPED_ZH.get(row["skipped"], row["skipped"])
    elif not task:
        state = "待生成回访任务"
    else:
        state = "已办结" if task["status"] != "open" else ("已超期" if task["overdue"] else "待回访")
    cells = [local, row["caller_num"] or "（未显示）", row["caller_name"], row["hotline"],
             row["department_name"] or row["department"] or "", row["queue"] or "",
             REASON_ZH.get(row["reason"], row["reason"]), "是" if row["short_abandon"] else "否",
             "" if row["wait_seconds"] is None else f"{row['wait_seconds']:g}", row["ivr_choice"],
             task.get("id", ""), {"open": "未办结", "closed": "已关闭"}.get(task.get("status"), ""),
             task.get("assignee_name") or task.get("assignee") or ("部门待办池" if task else ""), deadline,
             ("是" if task.get("overdue") else "否") if task else "", task.get("attempts", ""), state]
    return [guard_cell(c) for c in cells]


async def lost_csv(request: web.Request) -> web.Response:
    day, rows = await lost_calls(request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    tz = ZoneInfo(request.app[APP].settings.timezone)
    writer.writerows(csv_row(r, tz) for r in rows)
    department = request.query.get("department")
    name = f"lost-calls-{day}{'-' + department if department else ''}.csv"   # an identifier: safe
    return web.Response(body=("\ufeff" + out.getvalue()).encode("utf-8"), content_type="text/csv",
                        charset="utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                  "Cache-Control": "no-store"})


# --- a caller's history -----------------------------------------------------------------------

def history_departments(app_obj, who) -> set[str] | None:
    """The departments whose history the user sees: the office every one (None), a head theirs,
    an agent those of their posts (the queues their phone rings for)."""
    if who.role is access.Role.OFFICE:
        return None
    if who.role is access.Role.HEAD:
        return set(who.departments) | set(agent_departments(app_obj.settings, who.agent or ""))
    return set(agent_departments(app_obj.settings, who.agent or ""))


async def caller_history(request: web.Request) -> web.Response:
    """Previous calls (newest first), open cases with their owners (首问负责), open tasks."""
    app_obj = request.app[APP]
    who = identity(request)
    try:
        number = validation.phone_number(numbers.canonical(validation.phone_number(request.match_info["number"])))
    except validation.InvalidValue as exc:
        raise ApiError(400, "invalid_parameter", f"number: {exc}", parameter="number", field="number") from None
    q = models.query(HistoryQuery, request.query)
    limit = min(q.limit or HISTORY_CALLS, 100)
    departments = history_departments(app_obj, who)

    def visible(department: str | None, agent: str | None) -> bool:
        return departments is None or department in departments or access.is_self(who, agent)

    c = t.calls.c
    condition = c.caller_num == number
    if departments is not None:
        condition = and_(condition, c.department.in_(sorted(departments)))
    async with app_obj.store.engine.connect() as conn:
        keys = (await conn.execute(select(c.pbx, c.id).where(condition)
                                   .order_by(c.started_at.desc(), c.id.desc()).limit(limit))).all()
    records = await app_obj.store.calls_where(and_(c.caller_num == number, c.id.in_([k.id for k in keys]))) \
        if keys else []
    wanted = {(k.pbx, k.id) for k in keys}
    directory = app_obj.followup.directory
    tz = ZoneInfo(app_obj.settings.timezone)
    calls = []
    for r in sorted((r for r in records if (r.pbx, r.id) in wanted), key=lambda r: r.started_at, reverse=True):
        answered = [s for s in r.stints if s.end is StintEnd.ANSWERED or s.answered_at is not None]
        agent = answered[-1].agent if answered else None
        item = {"pbx": r.pbx, "call_id": r.id, "started_at": r.started_at.astimezone(tz).isoformat(),
                "caller_num": r.caller_num, "hotline": r.hotline, "department": r.department,
                "department_name": directory.department_names.get(r.department), "outcome": r.outcome.value,
                "outcome_name": OUTCOME_ZH.get(r.outcome.value, r.outcome.value), "ivr_choice": r.ivr_choice,
                "agent": agent, "agent_name": directory.agent_names.get(agent) if agent else None,
                "queue": r.stints[-1].queue if r.stints else (r.ivr_queue or None)}
        calls.append(masked(who, item, r.department, agent))
    cases = [masked(who, x, x["department"], x["owner"])
             for x in await app_obj.cases.list(caller=number, status="open") if visible(x["department"], x["owner"])]
    tasks = [masked(who, x, x["department"], x["assignee"])
             for x in await app_obj.followup.list(caller=number, status="open")
             if visible(x["department"], x["assignee"])]
    owners = {x["department"]: {"case_id": x["id"], "owner": x["owner"], "owner_name": x["owner_name"]}
              for x in cases}
    return json_response({"number": validation.mask_number(number) if who.role is access.Role.OFFICE else number,
                          "calls": calls, "cases": cases, "tasks": tasks, "owners": owners,
                          "repeat_caller": bool(calls)})
