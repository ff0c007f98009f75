"""Who is who: queues to departments, PBX interfaces to agents, hotline numbers to departments.

Built once from the configuration by the composition root; pure lookups afterwards. Every mapping
is per PBX (issue 14): a queue, hotline number, interface or member name configured without a
PBX is on every PBX ("*"); one configured for a PBX wins there over the every-PBX entry. A
lookup without a PBX (a caller that does not know it) takes the every-PBX entry, else the entry
of a single PBX when exactly one PBX has it (several: ambiguous, None).
"""
from __future__ import annotations

from dataclasses import dataclass, field

EVERY = "*"


@dataclass
class Directory:
    queue_department: dict[tuple[str, str], str] = field(default_factory=dict)   # (pbx, queue)
    hotline_department: dict[str, str] = field(default_factory=dict)             # number (every PBX)
    interface_agent: dict[str, str] = field(default_factory=dict)                # interface (every PBX)
    member_agent: dict[str, str] = field(default_factory=dict)                   # member name (every PBX)
    department_queues: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    department_names: dict[str, str] = field(default_factory=dict)
    agent_names: dict[str, str] = field(default_factory=dict)
    # the same for one PBX: (pbx, number / interface / member name)
    pbx_hotline_department: dict[tuple[str, str], str] = field(default_factory=dict)
    pbx_interface_agent: dict[tuple[str, str], str] = field(default_factory=dict)
    pbx_member_agent: dict[tuple[str, str], str] = field(default_factory=dict)

    def department_of_queue(self, pbx: str, queue: str) -> str | None:
        return self.queue_department.get((pbx, queue)) or self.queue_department.get((EVERY, queue))

    def department_of_hotline(self, number: str, pbx: str | None = None) -> str | None:
        return _lookup(self.pbx_hotline_department, self.hotline_department, number, pbx)

    def agent_of(self, interface: str, member_name: str = "", pbx: str | None = None) -> str | None:
        return (_lookup(self.pbx_interface_agent, self.interface_agent, interface, pbx)
                or _lookup(self.pbx_member_agent, self.member_agent, member_name, pbx))

    def agent_of_channel(self, channel: str, pbx: str | None = None) -> str | None:
        """'PJSIP/1001-0000001a' or 'Local/1001@agents-00000065;1' -> the agent of that phone."""
        base = channel.split(";")[0]
        found = None
        for (on, interface), agent in self.pbx_interface_agent.items():
            if (pbx is None or on == pbx) and _same_phone(base, interface):
                if pbx is not None:
                    return agent
                found = agent if found in (None, agent) else EVERY       # EVERY: ambiguous
        for interface, agent in self.interface_agent.items():
            if _same_phone(base, interface):
                return agent
        return None if found == EVERY else found

    def main_queue(self, department: str, pbx: str) -> str | None:
        queues = self.department_queues.get(department, [])
        for q_pbx, name in queues:
            if q_pbx in (pbx, EVERY):
                return name
        return queues[0][1] if queues else None


def _same_phone(base: str, interface: str) -> bool:
    stem = interface[:-2] if interface.endswith("/n") else interface
    return base == stem or base.startswith(stem + "-")


def _lookup(per_pbx: dict[tuple[str, str], str], every: dict[str, str], key: str, pbx: str | None) -> str | None:
    if not key:
        return None
    if pbx is not None and pbx != EVERY:
        return per_pbx.get((pbx, key)) or every.get(key)
    if key in every:
        return every[key]
    found = {value for (_, k), value in per_pbx.items() if k == key}
    return found.pop() if len(found) == 1 else None
