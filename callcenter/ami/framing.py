"""Byte-level AMI framing.

Messages are cut on CRLF CRLF *before* decoding, so a multi-byte UTF-8 character split across
TCP chunks (a caller name such as 张三) survives any chunking. Bad input never stops the stream:
a line without a colon is skipped, undecodable bytes are replaced, and a message larger than
``max_message`` is discarded up to its terminator. Every problem is counted and logged.

Writing (``encode_action``) is the mirror image: a field name or value that could end its line or
its message (CR, LF, NUL, any control character), an odd field name or an over-long value raises
``UnsafeField`` and nothing is encoded, so no text can ever become a second action.
"""
from __future__ import annotations

import logging
from typing import Any

from ..domain import validation
from ..domain.validation import mask_numbers

log = logging.getLogger(__name__)

TERMINATOR = b"\r\n\r\n"
BANNER_PREFIX = b"Asterisk Call Manager/"
MAX_MESSAGE = 64 * 1024


class Framer:
    """Feed bytes, get complete messages as ``dict[str, str]`` (first value wins for repeats,
    except ``ChanVariable``-style repeats, which are kept in ``_extra``)."""

    def __init__(self, max_message: int = MAX_MESSAGE, expect_banner: bool = True,
                 kinds: tuple[str, ...] = ("Event", "Response"), events: frozenset[str] | None = None):
        self.kinds = kinds                 # a message must carry one of these headers
        # None: parse every message; else only events named here (and anything with an ActionID)
        self.events = None if events is None else frozenset(e.encode() for e in events)
        self.skipped = 0
        self.buffer = bytearray()
        self.max_message = max_message
        self.banner: str | None = None if expect_banner else ""
        self.skipping = False          # inside an oversized message, dropping until terminator
        self.messages = 0
        self.problems = 0

    def feed(self, data: bytes) -> list[dict[str, str]]:
        buf = self.buffer
        buf += data
        if self.banner is None:
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > self.max_message:
                    self._problem("no banner in the first %d bytes", len(buf))
                    self.banner = ""
                return []
            line = bytes(buf[:end])
            if line.startswith(BANNER_PREFIX):
                self.banner = line.decode("utf-8", "replace")
                del buf[: end + 2]
            else:
                self.banner = ""
        out: list[dict[str, str]] = []
        start = 0
        while True:
            end = buf.find(TERMINATOR, start)
            if end < 0:
                break
            if self.skipping:
                self.skipping = False
            elif end - start > self.max_message:     # arrived whole, in one read: the same rule
                self._problem("message over %d bytes discarded", self.max_message)
            elif self.events is not None and self._unwanted(buf, start, end):
                self.skipped += 1
            else:
                message = self.parse(bytes(buf[start:end]))
                if message is not None:
                    out.append(message)
            start = end + 4
        if start:
            del buf[:start]
        if len(buf) > self.max_message:
            if not self.skipping:           # one warning per oversized message, however long
                self._problem("message over %d bytes discarded", self.max_message)
                self.skipping = True
            # keep the last 3 bytes: they may begin the terminator
            del buf[:-3]
        return out

    def _unwanted(self, buf: bytearray, start: int, end: int) -> bool:
        """An event nobody asked for, recognised from its first line without decoding it."""
        if not buf.startswith(b"Event: ", start, end):
            return False
        eol = buf.find(b"\r\n", start, end)
        name = bytes(buf[start + 7:eol if eol >= 0 else end])
        return name not in self.events and buf.find(b"\r\nActionID:", start, end) < 0

    def parse(self, raw: bytes) -> dict[str, str] | None:
        text = raw.decode("utf-8", "replace").lstrip("\r\n")
        if not text:
            return None
        message: dict[str, str] = {}
        for line in text.split("\r\n"):
            key, sep, value = line.partition(": ")
            if not sep:
                key, sep, value = line.partition(":")
                if not sep or not key or " " in key:
                    self._problem("AMI line without a colon skipped: %r", line[:120])
                    continue
            if key in message:
                message.setdefault("_extra", "")
                message["_extra"] += f"{key}: {value}\n"
            else:
                message[key] = value
        if not any(kind in message for kind in self.kinds):
            self._problem("AMI message without %s skipped: %r", "/".join(self.kinds), text[:120])
            return None
        self.messages += 1
        return message

    def _problem(self, fmt: str, *args) -> None:
        self.problems += 1
        log.warning(fmt, *(mask_numbers(a) if isinstance(a, str) else a for a in args))   # lines carry callers' numbers


# --- writing ------------------------------------------------------------------------------------

class UnsafeField(ValueError):
    """A field that cannot be written as one AMI header line; nothing was encoded."""

    def __init__(self, key: object, problem: str):
        super().__init__(f"AMI action field {str(key)[:64]!r}: {problem}; not sent")
        self.key = key
        self.problem = problem


def encode_action(fields: dict[str, Any], action_id: str) -> bytes:
    """One action as bytes, ``Action`` and ``ActionID`` first; list values repeat their key.
    Raises UnsafeField when any name or value could break out of its line or message."""
    if "Action" not in fields:
        raise UnsafeField("Action", "missing")
    items: list[tuple[Any, str]] = [("Action", _text(fields["Action"])), ("ActionID", _text(action_id))]
    seen = {"action", "actionid"}
    for key, value in fields.items():
        if key in ("Action", "ActionID"):
            continue
        if isinstance(key, str) and key.lower() in seen:     # Asterisk reads names case-insensitively
            raise UnsafeField(key, "the field is given twice")
        seen.add(str(key).lower())
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            items.append((key, _text(item)))
    for key, value in items:
        problem = validation.ami_field(key, value)
        if problem:
            raise UnsafeField(key, problem)
    data = ("".join(f"{key}: {value}\r\n" for key, value in items) + "\r\n").encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise UnsafeField(fields["Action"], f"the action is over {MAX_MESSAGE} bytes")
    return data


def _text(value: Any) -> Any:
    """Numbers and booleans as text; None and other objects are left for the check to refuse."""
    return str(value) if isinstance(value, (int, float)) else value
