"""Reading Asterisk's queue_log, the ground truth the service's conclusions are checked against."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

KEYS = {"ENTERQUEUE": "offered", "CONNECT": "answered", "ABANDON": "abandoned",
        "EXITWITHTIMEOUT": "timed_out"}


def parse(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, str], set[str]]:
    """Per queue counts, the answering agent per call id, and all call ids that queued."""
    per_queue: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    agents: dict[str, str] = {}
    calls: set[str] = set()
    for line in path.read_text().splitlines():
        f = line.split("|")
        if len(f) < 5 or f[1] in ("MANAGER", "NONE"):
            continue
        key = KEYS.get(f[4])
        if key:
            per_queue[f[2]][key] += 1
        if f[4] == "ENTERQUEUE":
            calls.add(f[1])
        if f[4] == "CONNECT":
            agents[f"{f[1]}|{f[2]}"] = f[3]
    return per_queue, agents, calls
