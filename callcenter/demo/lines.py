"""The demo's live output: one zh-CN line per stored call (time, department, masked caller,
outcome, and how it went: queues, agents, waits, transfers, 首问负责 direct dials, after-hours
callback requests and the caller's rating from the IVR)."""
from __future__ import annotations

from typing import Callable
from zoneinfo import ZoneInfo

from reports.calls import OUTCOME_ZH

from ..domain.calls import DIRECT
from ..domain.records import CallRecord, Outcome, StintEnd
from ..domain.validation import mask_number
from ..settings import Settings
from .ivr_summary import RATING_ZH

Out = Callable[[str], None]


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


class LiveLines:
    """Commit listener: one human-readable zh-CN line per completed call."""

    def __init__(self, settings: Settings, out: Out, ivr_of: Callable[[str], dict] | None = None):
        self.out = out
        self.ivr_of = ivr_of            # call id -> what the IVR knows of it (IvrTally.of)
        self.tz = ZoneInfo(settings.timezone)
        self.directory = settings.directory()
        self.short = settings.thresholds.short_abandon_seconds
        self.roles: dict[tuple[str, str], str] = {}
        for p in settings.posts:
            self.roles[(p.department, p.a)] = "A"
            self.roles[(p.department, p.b)] = "B"
        self.seen: set[tuple[str, str]] = set()

    async def __call__(self, records: list[CallRecord]) -> None:
        for record in records:
            self.seen.add((record.pbx, record.id))
            self.out(self.format(record))

    def department(self, department: str | None) -> str:
        return self.directory.department_names.get(department or "", department or "未知部门")

    def agent(self, department: str | None, agent: str | None, member_name: str) -> str:
        name = self.directory.agent_names.get(agent or "", member_name or "未知坐席")
        role = self.roles.get((department, agent))
        return f"{name}（{role}岗）" if role else name

    def format(self, r: CallRecord) -> str:
        caller = "未显示号码" if r.withheld else mask_number(r.caller_num)     # as the lists show them
        if r.caller_name and not r.withheld:
            caller += f" {r.caller_name}"
        started = r.started_at.astimezone(self.tz).strftime("%H:%M:%S")
        outcome = OUTCOME_ZH.get(r.outcome.value, r.outcome.value)
        return (f"{started}  {_pad(self.department(r.department), 30)}  {_pad(caller, 20)}  "
                f"{_pad(outcome, 10)}  {self.details(r)}")

    def details(self, r: CallRecord) -> str:
        ivr = self.ivr_of(r.id) if self.ivr_of else {}
        rating = f" → 评价：{RATING_ZH[ivr['rating']]}" if ivr.get("rating") in RATING_ZH else ""
        if not r.stints:
            if r.outcome is Outcome.AFTER_HOURS:
                return "非工作时间，已留言请求回电" if ivr.get("callback_request") else "非工作时间，已播放提示音"
            return "在语音导航中挂机"
        parts = []
        for index, s in enumerate(r.stints):
            wait = f"{s.wait_seconds or 0:.1f}"
            missed = f"{'、'.join(s.no_answers)}未接，" if s.no_answers and s.queue != DIRECT else ""
            if s.queue == DIRECT:                   # 首问负责: the dialplan dialled the case owner
                who = self.agent(s.department, s.agent, s.member_name)
                text = (f"再次来电，直拨首问负责人{who}接听" if s.end is StintEnd.ANSWERED
                        else f"再次来电，直拨首问负责人{who}未接通")
                if s.end is StintEnd.ANSWERED and s.talk_seconds is not None:
                    text += f"，通话 {s.talk_seconds:.0f} 秒"
            elif s.end is StintEnd.ANSWERED:
                text = f"{self.agent(s.department, s.agent, s.member_name)}接听，等待 {wait} 秒"
                if not s.transferred and s.talk_seconds is not None:
                    text += f"，通话 {s.talk_seconds:.0f} 秒"
            elif s.end is StintEnd.ABANDONED:
                short = "（短放弃）" if (s.wait_seconds or 0) < self.short else ""
                text = f"等待 {wait} 秒后挂断{short}"
            elif s.end is StintEnd.TIMED_OUT:
                text = f"等待 {wait} 秒无人接听，超时"
            elif s.end is StintEnd.NO_AGENT:
                text = "无坐席值守"
            else:
                text = "结果未知"
            prefix = "" if not index else "转人工队列：" if r.stints[index - 1].queue == DIRECT \
                else f"转{self.department(s.department)}："
            parts.append(prefix + missed + text)
        return " → ".join(parts) + rating
