"""The probe context written by `callcenter asterisk-config` (callcenter/asterisk_config.py) when
probes are enabled and go through a context of their own: one extension per hotline number probed
on that PBX (a number not listed fails the probe as unreachable). By default each one enters the
PBX's hotline context (`Goto`), the way a citizen's call runs from there (IVR, queue); with
`probes.dial` (e.g. `PJSIP/{number}@trunk`) it dials the number out and back in through the
trunk, so the whole path is tested. The probe's channel is `Local/<hotline>@<context>`.
"""
from __future__ import annotations

import math
import re

NUMBER = re.compile(r"\+?[0-9]{2,20}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
DIAL = re.compile(r"[A-Za-z0-9/@._:+\-]+")


def probe_context(probes, hotline_context: str, numbers: list[str], error=ValueError) -> str:
    """The `[context]` text; `error`: the exception class to raise (naming the key)."""
    if not NAME.fullmatch(probes.context) or probes.context.lower() in ("general", "globals"):
        raise error(f"probes.context: {probes.context[:40]!r} cannot be written as a dialplan context")
    if probes.hotlines is not None:
        wanted = {str(h) for h in probes.hotlines}
        numbers = [n for n in numbers if n in wanted]
    lines = [f"; Hotline probes (callcenter/probes/): Originate Local/<hotline>@{probes.context},",
             "; caller id " + (probes.caller_id or "(probes.caller_id)") + "; their calls are left out of every figure.",
             f"[{probes.context}]"]
    ring = max(1, math.ceil(probes.answer_timeout))
    for number in numbers:
        if not NUMBER.fullmatch(number):
            raise error(f"probes: hotline {number[:40]!r} is not a number")
        lines.append(f"exten => {number},1,NoOp(Hotline probe of ${{EXTEN}})")
        if probes.dial:
            target = probes.dial.replace("{number}", number)
            if not DIAL.fullmatch(target):
                raise error(f"probes.dial: {probes.dial[:60]!r} cannot be written into a Dial()")
            lines += [f" same => n,Dial({target},{ring})", " same => n,Hangup()"]
        else:
            lines.append(f" same => n,Goto({hotline_context},${{EXTEN}},1)")
    return "\n".join(lines) + "\n"
