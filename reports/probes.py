"""The hotline probes of one day (issue 13, 各单位要对电话是否能打通进行核实): the daily report's
`probes` section and its zh-CN text table. Probe calls are in no other figure (their call records
are dropped before storing, callcenter/probes/); this is where they are reported.

`probes_section(store, settings, day, now)` reads the `probes` table (a read: works on a
read-only store) for the probes placed on `day` (local, `settings.timezone`) up to `now`:
- "probes": every probe, oldest first: {at, pbx, hotline, department, department_name, trigger,
  result, answered, answer_seconds, reason};
- "placed": probes judged (a probe still waiting for its answer, result "pending", is not counted);
- "answered", "answer_rate" (answered / placed, null when none placed),
  "average_answer_seconds" (over the answered ones, null when none);
- "pending": probes placed but not judged yet;
- "hotlines": per (pbx, hotline): {pbx, hotline, department, department_name, placed, answered,
  answer_rate, average_answer_seconds, failures {result: n}, last_result}.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from callcenter.storage import tables as t

from .text import grid

RESULT_NAMES = {"answered": "接通", "no_answer": "无人接听", "busy": "忙", "congestion": "线路拥塞",
                "unreachable": "号码不可达", "link_down": "与交换机断开", "no_response": "交换机无响应",
                "failed": "呼叫失败", "pending": "拨测中"}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _average(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


async def probes_section(store, settings, day: date, now: datetime) -> dict:
    tz = ZoneInfo(settings.timezone)
    start = datetime.combine(day, time(0), tz)
    end = min(start + timedelta(days=1), now) if now is not None else start + timedelta(days=1)
    p = t.probes.c
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(t.probes).where(p.placed_at >= start, p.placed_at < end)
                                   .order_by(p.placed_at, p.id))).mappings().all()
    names = {d.id: d.name for d in settings.departments}
    probes, hotlines = [], {}
    for r in rows:
        answered = r["result"] == "answered"
        probes.append({"at": r["placed_at"].astimezone(tz).isoformat(), "pbx": r["pbx"], "hotline": r["hotline"],
                       "department": r["department"], "department_name": names.get(r["department"], r["department"]),
                       "trigger": r["trigger"], "result": r["result"], "answered": answered,
                       "answer_seconds": r["answer_seconds"], "reason": r["reason"]})
        if r["result"] == "pending":
            continue
        h = hotlines.setdefault((r["pbx"], r["hotline"]), {
            "pbx": r["pbx"], "hotline": r["hotline"], "department": r["department"],
            "department_name": names.get(r["department"], r["department"]), "placed": 0, "answered": 0,
            "seconds": [], "failures": {}, "last_result": None})
        h["placed"] += 1
        h["last_result"] = r["result"]
        if answered:
            h["answered"] += 1
            if r["answer_seconds"] is not None:
                h["seconds"].append(r["answer_seconds"])
        else:
            h["failures"][r["result"]] = h["failures"].get(r["result"], 0) + 1
    judged = [x for x in probes if x["result"] != "pending"]
    seconds = [x["answer_seconds"] for x in judged if x["answered"] and x["answer_seconds"] is not None]
    answered = sum(1 for x in judged if x["answered"])
    per_hotline = []
    for h in hotlines.values():
        s = h.pop("seconds")
        per_hotline.append({**h, "answer_rate": _rate(h["answered"], h["placed"]), "average_answer_seconds": _average(s)})
    return {"probes": probes, "placed": len(judged), "answered": answered, "answer_rate": _rate(answered, len(judged)),
            "average_answer_seconds": _average(seconds), "pending": len(probes) - len(judged),
            "hotlines": per_hotline}


def table_lines(section: dict | None) -> list[str]:
    """The section as zh-CN text lines (a summary line, then one row per hotline); "—" for none."""
    if not section:
        return ["热线拨测：—"]

    def pct(v):
        return "—" if v is None else f"{v * 100:.1f}%"

    def sec(v):
        return "—" if v is None else f"{v:.1f}"
    lines = [f"热线拨测：拨测 {section.get('placed', 0)} 次，接通 {section.get('answered', 0)} 次，"
             f"接通率 {pct(section.get('answer_rate'))}，平均接通用时 {sec(section.get('average_answer_seconds'))} 秒"
             + (f"（另有 {section['pending']} 次拨测中）" if section.get("pending") else "")]
    rows = []
    for h in section.get("hotlines", []):
        failures = "、".join(f"{RESULT_NAMES.get(k, k)}{n}次" for k, n in sorted(h["failures"].items())) or "—"
        rows.append([h["department_name"] or "—", h["hotline"], h["pbx"], str(h["placed"]), str(h["answered"]),
                     pct(h["answer_rate"]), sec(h["average_answer_seconds"]), failures,
                     RESULT_NAMES.get(h["last_result"], h["last_result"] or "—")])
    if rows:
        lines += grid(["单位", "热线号码", "交换机", "拨测", "接通", "接通率", "平均接通(秒)", "未接通原因", "最近一次"], rows)
    return lines
