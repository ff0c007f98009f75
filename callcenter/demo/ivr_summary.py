"""What the demo's callers did in the service's FastAGI IVR, and the demo's own database.

`IvrTally` listens to the IVR's finished sessions (ivr/agi_session.py `IvrAgi.on_finished`,
chained after whatever the app stores them with) and counts them; `lines` gives the zh-CN part
of the demo summary: FastAGI sessions, IVR entries, menu choices per item, owner routing (首问负责),
hang-ups in the IVR, after-hours callers and their callback requests, survey ratings (好差评,
满意率 = satisfied / ratings given, as the report defines it).

`demo_database(db_url)`: the demo writes a fresh SQLite database of its own in a temporary
directory unless `--db` names one, so runs never mix and nothing lands in the checkout.
"""
from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

from ..storage.store import DEFAULT_URL

log = logging.getLogger(__name__)
RATING_ZH = {"satisfied": "满意", "basic": "基本满意", "dissatisfied": "不满意"}
CLOSED_STEPS = ("closed", "callback_record")


def demo_database(db_url: str | None) -> tuple[str, str | None]:
    """(URL, zh-CN line saying where) — a fresh database per run unless one was given."""
    if db_url and db_url != DEFAULT_URL:
        return db_url, None
    path = Path(tempfile.mkdtemp(prefix="callcenter-demo-")) / "demo.db"
    return f"sqlite:///{path}", (f"本次演示使用新建的数据库 {path}（每次运行各用一个，互不混杂；"
                                 f"用 --db 可指定其他数据库）。")


class IvrTally:
    """Counts the IVR's finished sessions (one dict each, see IvrAgi._walk)."""

    def __init__(self, department_names: dict[str, str]):
        self.names = department_names
        self.entries = 0
        self.outcomes: Counter = Counter()
        self.items: Counter = Counter()          # (department, item) chosen in a menu
        self.to_person: Counter = Counter()      # "0": pressed 0; "": no key, the queue took the call
        self.after_hours = 0
        self.surveys = 0
        self.ratings: Counter = Counter()
        self.survey_outcomes: Counter = Counter()
        self.calls: dict[str, dict] = {}         # call id (the caller channel) -> callback request, rating

    def of(self, call_id: str) -> dict:
        """What the IVR knows of a call (the live line asks once, when the call is stored)."""
        return self.calls.pop(call_id, {})

    def attach(self, ivr) -> "IvrTally":
        """Chain after the IVR's own `on_finished` (storing the session), never instead of it."""
        before = ivr.on_finished

        def finished(record: dict) -> None:
            try:
                self.add(record)
            except Exception as exc:             # counting never disturbs the IVR
                log.warning("demo: counting IVR session failed: %s", exc)
            if before is not None:
                before(record)
        ivr.on_finished = finished
        return self

    def add(self, record: dict) -> None:
        known = self.calls.setdefault(record.get("uniqueid", ""), {})
        if len(self.calls) > 10000:             # calls never stored (none expected): forget the oldest
            self.calls.pop(next(iter(self.calls)))
        if record.get("rating"):
            known["rating"] = record["rating"]
        if record.get("outcome") == "callback_request":
            known["callback_request"] = True
        if record.get("script") == "survey":
            self.surveys += 1
            self.survey_outcomes[record.get("outcome")] += 1
            if record.get("rating"):
                self.ratings[record["rating"]] += 1
            return
        self.entries += 1
        outcome = record.get("outcome")
        self.outcomes[outcome] += 1
        path = record.get("path") or []
        if outcome == "closed" or any(s.get("at_step") in CLOSED_STEPS or s.get("hangup_at") in CLOSED_STEPS
                                      for s in path):
            self.after_hours += 1
        if outcome == "queue":
            route = record.get("route") or {}
            if route.get("item"):
                self.items[(record.get("department") or "", route["item"])] += 1
            else:
                chosen = [s.get("choice") for s in path if s.get("at_step") == "menu" and "choice" in s]
                self.to_person["0" if chosen and chosen[-1] == "0" else ""] += 1

    def lines(self, counts: dict | None = None) -> list[str]:
        o = self.outcomes
        out = ["", "语音导航（服务的 FastAGI IVR，经 TCP）："]
        if counts is not None:
            out.append(f"  FastAGI 会话 {counts.get('sessions', 0)} 个：正常结束 {counts.get('completed', 0)}，"
                       f"来电人挂机 {counts.get('hangups', 0)}，失败 {counts.get('failed', 0)}。")
        chosen = sum(self.items.values())
        out.append(f"  进入语音导航 {self.entries} 次：按键选择事项 {chosen} 次，按0转人工 {self.to_person['0']} 次，"
                   f"未按键转人工 {self.to_person['']} 次；首问负责直接转原经办人 {o['owner']} 次、"
                   f"转同岗坐席 {o['agent']} 次；在导航中挂机 {o['hangup']} 次。")
        out.append(f"  非工作时间来电 {self.after_hours} 次，其中留言请求回电 {o['callback_request']} 次。")
        if self.items:
            top = "；".join(f"{self.names.get(d, d)}·{item} {n} 次" for (d, item), n in self.items.most_common(5))
            out.append(f"  选择最多的事项：{top}。")
        rated = sum(self.ratings.values())
        rate = f"{self.ratings['satisfied'] / rated:.1%}" if rated else "—"
        by_rating = "，".join(f"{RATING_ZH[k]} {self.ratings[k]}" for k in RATING_ZH)
        out.append(f"  满意度评价：邀请 {self.surveys} 次，评价 {rated} 次（{by_rating}），"
                   f"未评价 {self.survey_outcomes['no_rating']} 次，评价时挂机 {self.survey_outcomes['hangup']} 次；"
                   f"满意率（满意 / 已评价）{rate}。")
        return out
