"""The AMI messages of the simulated PBX, with the headers, in the order, of the recorded traces
(``timestampevents = yes``). A mixin of PbxSimulator: it needs ``emit``, ``_now``, ``emitted``
and ``_epoch``."""
from __future__ import annotations

from .model import CAUSE_TXT, PRIVILEGE, Call, Leg, Member, Message


class AmiMessages:

    def _send(self, event: str, *parts: Message) -> None:
        message = {"Event": event, "Privilege": PRIVILEGE.get(event, "call,all"),
                   "Timestamp": f"{self._now.timestamp():.6f}"}
        for part in parts:
            message.update(part)
        self.emitted += 1
        self.emit(message)

    def _newexten(self, leg: Leg, priority: int, application: str, data: str = "") -> None:
        leg.priority = priority
        self._send("Newexten", leg.block(), {"Extension": leg.exten, "Application": application,
                                             "AppData": data})

    def _user_event(self, leg: Leg, priority: int, name: str, values: Message) -> None:
        self._newexten(leg, priority, "UserEvent", ",".join([name] + [f"{k}: {v}" for k, v in values.items()]))
        self._send("UserEvent", leg.block(), {"UserEvent": name, **values})

    def _caller_id(self, leg: Leg, cid: tuple[str, str]) -> None:
        leg.cid = cid
        pres = ("33 (Presentation Restricted, Passed Screen)" if cid[0] == "anonymous"
                else "0 (Presentation Allowed, Not Screened)")
        self._send("NewCallerid", leg.block(), {"CID-CallingPres": pres})

    def _up(self, leg: Leg) -> None:
        leg.state = 6
        self._send("Newstate", leg.block())

    def _hangup(self, leg: Leg, cause: int) -> None:
        self._send("Hangup", leg.block(), {"Cause": str(cause), "Cause-txt": CAUSE_TXT[cause]})

    def _device(self, device: str, state: str) -> None:
        self._send("DeviceStateChange", {"Device": device, "State": state})

    def _hotline_device(self, call: Call) -> None:
        busy = any(c is not call and c.hotline == call.hotline for c in self.calls)
        self._device(f"Local/{call.hotline}@hotline", "INUSE" if busy else "NOT_INUSE")

    def _member_event(self, event: str, m: Member) -> None:
        a = m.agent
        self._send(event, {
            "Queue": m.queue.name, "MemberName": a.name, "Interface": a.interface,
            "StateInterface": f"Custom:{a.exten}", "Membership": "dynamic", "Penalty": str(m.penalty),
            "CallsTaken": str(m.calls_taken), "LastCall": str(m.last_call), "LastPause": str(m.last_pause),
            "LoginTime": str(m.login_time), "InCall": "1" if a.busy else "0",
            "Status": "5" if a.unreachable else "1", "Paused": "1" if m.paused else "0",
            "PausedReason": m.reason, "Ringinuse": "0", "Wrapuptime": "0"})

    def _queue_event(self, event: str, call: Call, values: Message) -> None:
        self._send(event, call.two.block(), {"Queue": call.queue.name, **values})

    def _agent_event(self, event: str, call: Call, m: Member, values: Message | None = None) -> None:
        dest = call.agent_legs[0].block("Dest") if call.agent_legs else {}
        self._send(event, call.two.block(), dest, {"Queue": m.queue.name, "Interface": m.agent.interface,
                                                   "MemberName": m.agent.name, **(values or {})})

    def _local_pair(self, exten: str, context: str, linkedid: str | None = None) -> tuple[Leg, Leg]:
        name = f"Local/{exten}@{context}-{next(self._local):08x}"
        first = f"{self._epoch()}.{next(self._seq)}"
        second = f"{self._epoch()}.{next(self._seq)}"
        linkedid = linkedid or first
        return (Leg(f"{name};1", first, linkedid, context, exten, state=0),
                Leg(f"{name};2", second, linkedid, context, exten, state=4))
