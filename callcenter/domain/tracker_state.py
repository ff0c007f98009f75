"""The open state of the pure trackers as plain, JSON-ready dicts, and back (no I/O).

`calls_to_state` / `calls_from_state` cover a `CallTracker`'s open calls and channel index;
`presence_to_state` / `presence_from_state` a `PresenceTracker`'s queue members (its seats are
rebuilt from them). The service checkpoints these so that a restart resumes the calls and
sessions that were open (callcenter/checkpointer.py). The encoding follows the dataclasses'
fields, so a field added later is carried without change here; a field missing from an older
state takes its default, an unknown one is ignored. A stint a call also lists in `direct` or
`direct_answered` stays the same object after a round trip.
"""
from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from enum import Enum

from .calls import CallTracker, _Live
from .presence import Member, PresenceTracker
from .records import Outcome, Stint, StintEnd

VERSION = 1
_ENUMS = {cls.__name__: cls for cls in (StintEnd, Outcome)}


def calls_to_state(tracker: CallTracker) -> dict:
    return {"version": VERSION,
            "calls": [_encode_live(live) for live in tracker.calls.values()],
            "channels": [[pbx, uniqueid, linkedid] for (pbx, uniqueid), linkedid in tracker.channels.items()],
            # when each PBX's link was lost (the stop itself): what the next resync ends vanished calls at
            "blind_since": _encode(dict(getattr(tracker, "blind_since", {})), None)}


def calls_from_state(tracker: CallTracker, state: dict) -> int:
    """Put the open calls of ``state`` into ``tracker`` (calls it already has are kept);
    returns how many were added."""
    added = 0
    for item in state.get("calls", []):
        live = _decode_live(item)
        key = (live.pbx, live.linkedid)
        if key in tracker.calls:
            continue
        tracker.calls[key] = live
        added += 1
        for uniqueid in live.channels:
            tracker.channels.setdefault((live.pbx, uniqueid), live.linkedid)
    for pbx, uniqueid, linkedid in state.get("channels", []):
        if (pbx, linkedid) in tracker.calls:
            tracker.channels.setdefault((pbx, uniqueid), linkedid)
    blind = getattr(tracker, "blind_since", None)
    if blind is not None and state.get("blind_since"):
        for pbx, at in _decode(state["blind_since"], None).items():
            blind.setdefault(pbx, at)
    return added


def presence_to_state(tracker: PresenceTracker) -> dict:
    return {"version": VERSION, "members": [_encode_fields(m) for m in tracker.members.values()]}


def presence_from_state(tracker: PresenceTracker, state: dict) -> int:
    """Put the queue members of ``state`` into ``tracker`` (members it already has are kept)."""
    added = 0
    for item in state.get("members", []):
        member = Member(**_decode_fields(Member, item))
        key = (member.pbx, member.queue, member.interface)
        if key in tracker.members:
            continue
        tracker.members[key] = member
        added += 1
        if member.agent is not None:
            tracker.seats.setdefault((member.pbx, member.queue, member.agent), member)
    return added


def members_from_state(state: dict) -> list[Member]:
    """The queue members of a presence state, without a tracker (for reports)."""
    return [Member(**_decode_fields(Member, item)) for item in state.get("members", [])]


# --- encoding ----------------------------------------------------------------------------------

def _encode_live(live: _Live) -> dict:
    stints = live.stints
    out = {}
    for f in fields(live):
        value = getattr(live, f.name)
        if f.name == "stints":
            out[f.name] = [_encode_fields(s) for s in value]
        else:
            out[f.name] = _encode(value, stints)
    return out


def _decode_live(item: dict) -> _Live:
    stints = [Stint(**_decode_fields(Stint, s)) for s in item.get("stints", [])]
    known = {f.name for f in fields(_Live)}
    values = {k: _decode(v, stints) for k, v in item.items() if k in known and k != "stints"}
    return _Live(**values, stints=stints)


def _encode_fields(obj) -> dict:
    return {f.name: _encode(getattr(obj, f.name), None) for f in fields(obj)}


def _decode_fields(cls, item: dict) -> dict:
    known = {f.name for f in fields(cls)}
    return {k: _decode(v, None) for k, v in item.items() if k in known}


def _encode(value, stints: list[Stint] | None):
    if isinstance(value, Enum):
        return {"$enum": type(value).__name__, "v": value.value}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, Stint):
        for i, stint in enumerate(stints or ()):
            if stint is value:
                return {"$stint": i}
        return {"$stint_value": _encode_fields(value)}
    if isinstance(value, (set, frozenset)):
        return {"$set": sorted((_encode(v, stints) for v in value), key=repr)}
    if isinstance(value, (list, tuple)):
        return [_encode(v, stints) for v in value]
    if isinstance(value, dict):
        return {"$dict": [[_encode(k, stints), _encode(v, stints)] for k, v in value.items()]}
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _decode(value, stints: list[Stint] | None):
    if isinstance(value, list):
        return [_decode(v, stints) for v in value]
    if not isinstance(value, dict):
        return value
    if "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    if "$enum" in value:
        return _ENUMS[value["$enum"]](value["v"])
    if "$stint" in value:
        return stints[value["$stint"]] if stints is not None else None
    if "$stint_value" in value:
        return Stint(**_decode_fields(Stint, value["$stint_value"]))
    if "$set" in value:
        return {_decode(v, stints) for v in value["$set"]}
    if "$dict" in value:
        return {_key(_decode(k, stints)): _decode(v, stints) for k, v in value["$dict"]}
    raise ValueError(f"unknown checkpoint value {value!r}")


def _key(value):
    return tuple(value) if isinstance(value, list) else value
