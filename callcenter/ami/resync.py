"""The resync snapshot after every AMI login: QueueStatus (members, and the callers waiting with
their wait) and CoreShowChannels (channels with their durations), read back together and turned
into one ``Resynced`` event placed in the stream where the channel list ended."""
from __future__ import annotations

import asyncio
from datetime import datetime

from ..domain import events as ev
from .translate import Message, caller_num, member_state


def _duration(value: str | None) -> int | None:
    """Asterisk's durations: "HH:MM:SS" (CoreShowChannel Duration) or plain seconds."""
    if not value:
        return None
    try:
        seconds = 0
        for part in value.strip().split(":"):
            seconds = seconds * 60 + int(part)
        return seconds
    except ValueError:
        return None


def _waiting(m: Message) -> ev.WaitingCaller:
    return ev.WaitingCaller(m.get("Queue", ""), m.get("Uniqueid", ""), m.get("Channel", ""),
                            caller_num(m), _duration(m.get("Wait")) or 0,
                            _duration(m.get("Position")) or 0)


def _live_channel(m: Message) -> ev.LiveChannel:
    in_bridge = bool(m.get("BridgeId"))        # the lab's Asterisk gives BridgeId, no BridgedDuration
    bridged = _duration(m.get("BridgedDuration")) if in_bridge else None
    return ev.LiveChannel(m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Channel", ""),
                          m.get("Context", ""), m.get("Extension") or m.get("Exten", ""),
                          caller_num(m), m.get("Application", ""), m.get("ApplicationData", ""),
                          _duration(m.get("Duration")) or 0, bridged, in_bridge)



async def resync(client) -> None:
    """Read back ``client``'s live queue members and channels; hand them to the sink as one event, placed
    in the stream where the channel snapshot ended (both actions are sent at once, so the
    two snapshots are as close together as the PBX makes them)."""
    pbx = client.endpoint.id
    snapshot: dict[str, tuple] = {}

    def members_listed(items: list[Message], at: datetime) -> None:
        snapshot["members"] = tuple(member_state(ev.MemberAdded, pbx, at, m) for m in items
                                    if m.get("Event") == "QueueMember")
        snapshot["waiting"] = tuple(_waiting(m) for m in items if m.get("Event") == "QueueEntry")

    def channels_listed(items: list[Message], at: datetime) -> ev.Resynced | None:
        if "members" not in snapshot:        # QueueStatus failed: the session ends, no resync
            return None
        channels = tuple(_live_channel(m) for m in items if m.get("Event") == "CoreShowChannel")
        live = frozenset(c.uniqueid for c in channels)
        return ev.Resynced(pbx, at, live, snapshot["members"], snapshot["waiting"], channels)

    await asyncio.gather(client.action({"Action": "QueueStatus"}, on_complete=members_listed),
                         client.action({"Action": "CoreShowChannels"}, on_complete=channels_listed))
