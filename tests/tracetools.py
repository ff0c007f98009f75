"""Derive new streams from the real traces: shift ids (new calls from the same callers) and
swap who answers, so multi-call stories run on real Asterisk event sequences."""
from __future__ import annotations

from pathlib import Path

from callcenter.ami.server import load_trace


def derive(src: Path, dst: Path, replacements: list[tuple[str, str]]) -> Path:
    trace = load_trace(src)
    lines = ['{"banner": "%s"}' % trace.banner]
    import json
    for t, raw in trace.messages:
        text = raw.decode("utf-8")
        for old, new in replacements:
            text = text.replace(old, new)
        lines.append(json.dumps({"t": t, "raw": text}, ensure_ascii=False))
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def swap_agents(a: str, b: str) -> list[tuple[str, str]]:
    """Swap two agents' member names and interfaces (e.g. 1001 <-> 1002)."""
    return [(f"Agent A {a}", "\0A"), (f"Agent B {b}", f"Agent A {a}"), ("\0A", f"Agent B {b}"),
            (f"{a}@agents", "\0I"), (f"{b}@agents", f"{a}@agents"), ("\0I", f"{b}@agents"),
            (f"Custom:{a}", "\0C"), (f"Custom:{b}", f"Custom:{a}"), ("\0C", f"Custom:{b}")]


def shift_ids(prefix_old: str, prefix_new: str) -> list[tuple[str, str]]:
    """New Uniqueids/Linkedids: the same callers make new calls."""
    return [(prefix_old, prefix_new)]
