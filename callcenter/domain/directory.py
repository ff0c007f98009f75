"""Who is who: queues to departments, PBX interfaces to agents, hotline numbers to departments.

Built once from the configuration by the composition root; pure lookups afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Directory:
    queue_department: dict[tuple[str, str], str] = field(default_factory=dict)   # (pbx, queue)
    hotline_department: dict[str, str] = field(default_factory=dict)             # number
    interface_agent: dict[str, str] = field(default_factory=dict)                # interface
    member_agent: dict[str, str] = field(default_factory=dict)                   # member name
    department_queues: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    department_names: dict[str, str] = field(default_factory=dict)
    agent_names: dict[str, str] = field(default_factory=dict)

    def department_of_queue(self, pbx: str, queue: str) -> str | None:
        return self.queue_department.get((pbx, queue)) or self.queue_department.get(("*", queue))

    def department_of_hotline(self, number: str) -> str | None:
        return self.hotline_department.get(number)

    def agent_of(self, interface: str, member_name: str = "") -> str | None:
        return self.interface_agent.get(interface) or self.member_agent.get(member_name)

    def agent_of_channel(self, channel: str) -> str | None:
        """'PJSIP/1001-0000001a' or 'Local/1001@agents-00000065;1' -> the agent of that phone."""
        base = channel.split(";")[0]
        for interface, agent in self.interface_agent.items():
            stem = interface[:-2] if interface.endswith("/n") else interface
            if base == stem or base.startswith(stem + "-"):
                return agent
        return None

    def main_queue(self, department: str, pbx: str) -> str | None:
        queues = self.department_queues.get(department, [])
        for q_pbx, name in queues:
            if q_pbx in (pbx, "*"):
                return name
        return queues[0][1] if queues else None
