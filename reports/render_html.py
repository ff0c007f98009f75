"""The daily report as one self-contained zh-CN HTML document that prints well on A4.

Jinja2 (autoescape on) with the template in reports/templates/daily.html; the CSS is inline,
there is no script and no external resource. The charts (calls by hour, wait distribution,
30-day trend of connect and resolution rate) are inline SVG whose geometry is computed here.
Every key of the report contract is shown when present and "—" when missing or null.

A head's scoped report (``scope``) has no 合计 row (the totals are the whole hotline's); its
charts sum the departments it shows.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from .render_csv import (CALLBACKS, CALLS, CASES, CAUSES, COVERAGE, FOLLOWUP, MISSING, SERVICE, TARGETS, TITLES,
                         check, fmt, mark, value)

ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=True, trim_blocks=True, lstrip_blocks=True)
BANDS = ("0-15", "15-30", "30-60", "60+")
SERIES = (("offered", "呼入"), ("answered", "接通"), ("abandoned", "放弃"))


def render_html(report: dict) -> str:
    whole = "scope" not in report
    charted = _charted(report, whole)
    return ENV.get_template("daily.html").render(
        r=report, whole=whole, title=report.get("title") or f"热线日报 {report.get('date', '')}",
        as_of=_clock(report.get("as_of"), report.get("timezone")), generated=_stamp(report), sections=[
            ("话务", CALLS), ("服务水平与等待", SERVICE), ("回访任务", FOLLOWUP), ("诉求办理", CASES), ("AB岗在岗", COVERAGE)],
        queue_sections=[("话务", CALLS), ("服务水平与等待", SERVICE), ("回访任务", FOLLOWUP)],
        departments=report.get("departments") or [], queues=report.get("queues") or [],
        targets=_targets(report.get("targets")), causes=_causes(report, whole),
        hourly=hourly_chart(charted.get("calls_by_hour")), waits=wait_chart(charted.get("wait_bands")),
        trend=trend_chart(report.get("trend"), (report.get("targets") or {}).get("connect_rate")),
        value=value, check=check, fmt=fmt, mark=mark, cause_name=lambda c: CAUSES.get(c, c), callbacks=CALLBACKS,
        missing=MISSING,
        kpis=_kpis(report, whole), names=_names(report), titles=TITLES,
        local=lambda iso: _clock(iso, report.get("timezone"), "%H:%M:%S"))


def _clock(iso, tz, pattern: str = "%H:%M") -> str | None:
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if moment.tzinfo and tz:
        moment = moment.astimezone(ZoneInfo(tz))
    return moment.strftime(pattern)


def _stamp(report: dict) -> str | None:
    return _clock(report.get("generated_at"), report.get("timezone"), "%Y-%m-%d %H:%M")


def _targets(targets: dict | None) -> list[tuple[str, str]]:
    targets = targets or {}
    return [(title, MISSING if targets.get(key) is None else f"{sign} {targets[key] * 100:.1f}%")
            for key, title, sign in TARGETS]


def _causes(report: dict, whole: bool) -> tuple[list[str], list[tuple[str, dict | None]]]:
    """The unanswered-by-cause table: the causes seen (known ones first) and a row per department."""
    entries = [(d.get("name") or d.get("department"), d.get("unanswered_by_cause")) for d in report.get("departments") or []]
    if whole and report.get("totals"):
        entries.append(("合计", report["totals"].get("unanswered_by_cause")))
    seen = {c for _, by in entries for c in (by or {})}
    return [c for c in CAUSES if c in seen] + sorted(seen - set(CAUSES)), entries


KPIS = (("offered", "n"), ("answered", "n"), ("connect_rate", "pct"), ("abandoned", "n"),
        ("service_level_15", "pct"), ("longest_wait_seconds", "s"))


def _kpis(report: dict, whole: bool) -> list[tuple[str, object, str]]:
    """The day at a glance: the totals, a head's one department, or (several) their summed counts."""
    departments = report.get("departments") or []
    if whole or len(departments) == 1:
        entry = report.get("totals") if whole else departments[0]
        return [(key, value(entry, key), kind) for key, kind in KPIS]
    return [(key, sum(d.get(key) or 0 for d in departments) if kind == "n" else None, kind) for key, kind in KPIS]


def _names(report: dict) -> dict:
    """Department id -> name, from the report's own entries."""
    names = {q.get("department"): q.get("department_name") for q in report.get("queues") or []}
    names.update({d.get("department"): d.get("name") for d in report.get("departments") or []})
    return {k: v for k, v in names.items() if k and v}


def _charted(report: dict, whole: bool) -> dict:
    """The entry the charts show: the totals, or for a scoped report the sum of its departments."""
    if whole:
        return report.get("totals") or {}
    hours: dict[int, dict] = {}
    bands: dict[str, dict] = {}
    for d in report.get("departments") or []:
        for h in d.get("calls_by_hour") or []:
            slot = hours.setdefault(h["hour"], {"hour": h["hour"], "offered": 0, "answered": 0, "abandoned": 0})
            for key, _ in SERIES:
                slot[key] += h.get(key) or 0
        for b in d.get("wait_bands") or []:
            bands.setdefault(b["band"], {**b, "answered": 0})["answered"] += b.get("answered") or 0
    return {"calls_by_hour": [hours[h] for h in sorted(hours)] or None, "wait_bands": list(bands.values()) or None}


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round axis steps (1, 2, 5 x 10^n) from 0 to at least `top`."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    scale = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    step = next(s * scale for s in (1, 2, 5, 10) if s * scale >= raw)
    out = [0.0]
    while out[-1] < top:
        out.append(out[-1] + step)
    return out


W, H, LEFT, BOTTOM, TOP = 680, 220, 40, 24, 12


def hourly_chart(hours: list[dict] | None) -> dict | None:
    """Grouped bars (offered, answered, abandoned) for each hour 0-23."""
    if not hours:
        return None
    by_hour = {h["hour"]: h for h in hours}
    ticks = _ticks(max(max((h.get(k) or 0) for k, _ in SERIES) for h in hours))
    plot_w, plot_h = W - LEFT - 8, H - BOTTOM - TOP
    slot = plot_w / 24
    bar = slot * 0.8 / len(SERIES)
    bars = []
    for hour in range(24):
        h = by_hour.get(hour, {})
        for i, (key, name) in enumerate(SERIES):
            n = h.get(key) or 0
            height = plot_h * n / ticks[-1]
            bars.append({"x": LEFT + hour * slot + slot * 0.1 + i * bar, "y": TOP + plot_h - height, "w": bar,
                         "h": height, "cls": key, "title": f"{hour:02d}时 {name} {n}"})
    return {"w": W, "h": H, "bars": bars, "y": _yaxis(ticks, plot_h, str), "legend": SERIES,
            "x": [{"x": LEFT + hour * slot + slot / 2, "label": f"{hour}"} for hour in range(0, 24, 2)],
            "base": TOP + plot_h, "left": LEFT, "right": W - 8}


def wait_chart(bands: list[dict] | None) -> dict | None:
    """One bar per wait band: answered calls and their share."""
    if not bands:
        return None
    total = sum(b.get("answered") or 0 for b in bands)
    ticks = _ticks(max(b.get("answered") or 0 for b in bands))
    plot_h, slot = H - BOTTOM - TOP, (W / 2 - LEFT - 8) / len(bands)
    bars = []
    for i, b in enumerate(bands):
        n = b.get("answered") or 0
        height = plot_h * n / ticks[-1]
        share = f"{n / total * 100:.0f}%" if total else MISSING
        label = f"{b.get('band')}秒" if b.get("to") is not None or b.get("band") != "60+" else "60秒以上"
        bars.append({"x": LEFT + i * slot + slot * 0.2, "y": TOP + plot_h - height, "w": slot * 0.6, "h": height,
                     "n": n, "share": share, "label": label, "mid": LEFT + i * slot + slot / 2})
    return {"w": W / 2, "h": H, "bars": bars, "y": _yaxis(ticks, plot_h, str), "base": TOP + plot_h,
            "left": LEFT, "right": W / 2 - 8, "total": total}


def trend_chart(days: list[dict] | None, target: float | None) -> dict | None:
    """Two lines over the days (connect rate, resolution rate), 0-100 %, broken where a day has none."""
    if not days:
        return None
    plot_w, plot_h = W - LEFT - 8, H - BOTTOM - TOP
    step = plot_w / max(len(days) - 1, 1)

    def y(v):
        return TOP + plot_h * (1 - v)
    lines = []
    for key, name, cls in (("connect_rate", "接通率", "connect"), ("resolution_rate", "解决率", "resolution")):
        segments, current = [], []
        for i, d in enumerate(days):
            v = d.get(key)
            if v is None:
                segments, current = segments + ([current] if current else []), []
                continue
            current.append((round(LEFT + i * step, 1), round(y(max(0.0, min(1.0, v))), 1)))
        segments += [current] if current else []
        lines.append({"cls": cls, "name": name, "points": [" ".join(f"{x},{py}" for x, py in s) for s in segments],
                      "dots": [p for s in segments for p in s]})
    last = len(days) - 1
    labels = [{"x": LEFT + i * step, "label": str(d.get("date", ""))[5:], "anchor": "end" if i == last and i else
               "middle"} for i, d in enumerate(days) if (i % 5 == 0 and last - i >= 3) or i == last]
    ticks = [0, 0.25, 0.5, 0.75, 1.0]
    return {"w": W, "h": H, "lines": lines, "x": labels, "base": TOP + plot_h, "left": LEFT, "right": W - 8,
            "y": _yaxis(ticks, plot_h, lambda t: f"{t * 100:.0f}%"),
            "target": None if target is None else {"y": y(target), "label": f"接通率目标 {target * 100:.0f}%"},
            "first": days[0].get("date"), "last": days[-1].get("date")}


def _yaxis(ticks: list[float], plot_h: float, label) -> list[dict]:
    top = ticks[-1] or 1
    return [{"y": TOP + plot_h * (1 - t / top), "label": label(int(t) if t == int(t) else t)} for t in ticks]
