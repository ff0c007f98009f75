"""``GET /api/reports/daily``: the daily report (reports/daily.py, as ``callcenter report daily``
builds it) for heads (their departments) and the office, as JSON or a small zh-CN HTML page
(the dashboard's "open the daily report" button; Jinja2 with autoescape on).

A head gets the departments they answer for (one with ``department=``); the queues and posts are
cut to those departments, the totals are those of the whole hotline (they say so).
"""
from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from . import models
from .app import APP
from .errors import json_response
from .scope import list_departments
from .security import identity


class ReportQuery(models.DayQuery):
    department: models.Ident = None
    format: Literal["json", "html"] = "json"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/reports/daily", daily_report)


async def build_daily(app_obj, day) -> dict:
    """The report of `day` from the service's own database, as `callcenter report daily` builds
    it: SQL aggregates (callcenter/storage/report_queries.py) combined by reports/daily.py."""
    from reports import daily
    from ..storage.report_queries import daily_report_inputs
    inputs = await daily_report_inputs(app_obj.store, app_obj.settings, day, app_obj.clock.now())
    return daily.build(day, [], app_obj.settings, **inputs)


def for_departments(report: dict, departments: list[str | None]) -> dict:
    if None in departments:
        return report
    keep = set(departments)
    return {**report, "scope": sorted(keep),
            "departments": [d for d in report["departments"] if d["department"] in keep],
            "queues": [q for q in report["queues"] if q["department"] in keep],
            "unmapped_queues": [],
            **({"posts": [p for p in report["posts"] if p.get("department") in keep]} if "posts" in report else {})}


async def daily_report(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    who = identity(request)
    q = models.query(ReportQuery, request.query)
    tz = ZoneInfo(app_obj.settings.timezone)
    day = q.date or app_obj.clock.now().astimezone(tz).date()
    departments = list_departments(who, q.department)
    report = for_departments(await build_daily(app_obj, day), departments)
    if q.format == "json":
        return json_response(report)
    html = PAGE.render(report=report, columns=COLUMNS, pct=_pct, whole=None in departments)
    return web.Response(text=html, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def _pct(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


COLUMNS = [("offered", "呼入"), ("answered", "接通"), ("abandoned", "放弃"), ("short_abandoned", "短放弃"),
           ("timed_out", "超时"), ("no_agent", "无人值守"), ("ivr_abandoned", "IVR挂机"),
           ("after_hours", "非工作时间"), ("connect_rate", "接通率"), ("tasks_created", "回访任务"),
           ("tasks_overdue", "超期任务")]

PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>热线日报 {{ report.date }}</title>
<style>
body{font-family:system-ui,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:1.5rem;color:#1a1a1a}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #888;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#e8eef5}tr.total td{font-weight:bold}
p.note{color:#333;font-size:.9rem}
</style></head><body>
<h1>热线日报 {{ report.date }}</h1>
<p>时区：{{ report.timezone }}{% if report.scope is defined %}；范围：{{ report.departments | map(attribute="name") | join("、") }}{% endif %}</p>
<h2>按部门</h2>
<table><thead><tr><th scope="col">部门</th>{% for key, title in columns %}<th scope="col">{{ title }}</th>{% endfor %}</tr></thead>
<tbody>{% for d in report.departments %}<tr><td>{{ d.name }}</td>{% for key, title in columns %}
<td>{% if key == "connect_rate" %}{{ pct(d[key]) }}{% else %}{{ d[key] if d[key] is not none else "—" }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}{% if whole %}<tr class="total"><td>合计</td>{% for key, title in columns %}
<td>{% if key == "connect_rate" %}{{ pct(report.totals[key]) }}{% else %}{{ report.totals[key] if report.totals[key] is not none else "—" }}{% endif %}</td>{% endfor %}</tr>{% endif %}
</tbody></table>
<h2>按队列</h2>
<table><thead><tr><th scope="col">队列</th><th scope="col">部门</th>{% for key, title in columns[:9] %}<th scope="col">{{ title }}</th>{% endfor %}</tr></thead>
<tbody>{% for q in report.queues %}<tr><td>{{ q.queue }}</td><td>{{ q.department_name or "未配置" }}</td>{% for key, title in columns[:9] %}
<td>{% if key == "connect_rate" %}{{ pct(q[key]) }}{% else %}{{ q[key] }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
<p class="note">口径：接通率 = {{ report.definitions.connect_rate }}</p>
</body></html>
""")
