"""The AGI wire format, without I/O: the agi_ environment, commands and their answers.

Writing: every argument is checked before a byte is written. Text goes in double quotes with `\\`
and `"` escaped (Asterisk's res_agi argument parser reads them back literally); a value with a
line break, NUL or any other control character, a lone surrogate, or a command over the AGI line
limit raises `UnsafeArgument` and nothing is encoded, so no value can end its command early or
become a second one. Numbers are written bare.

Reading: `200 result=<r> [(<data>)] [key=value ...]`, the other codes (510 unknown command, 511 dead
channel, 520 usage, whose `520-` lines run until `520 End of proper usage.`), and `HANGUP`, the line
Asterisk sends when the channel hangs up.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from callcenter.domain.validation import CONTROL

MAX_LINE = 2000               # Asterisk reads a command into a 2048-byte buffer
MAX_HEADER_LINES = 200        # an agi_ environment is ~25 lines
COMMAND = re.compile(r"[A-Z][A-Z ]{1,40}")
SOUND = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_\-/.]{0,199}")     # a sound file name, no extension
ANSWER = re.compile(r"(\d{3})([ -])(.*)")
RESULT = re.compile(r"result=(\S*)\s*(.*)")
DATA = re.compile(r"\((.*)\)((?:\s+[A-Za-z_]+=\S*)*)\s*")


class UnsafeArgument(ValueError):
    """An AGI command that cannot be written as one safe line; nothing was sent."""


def quote(value: object) -> str:
    """One argument: numbers bare, text quoted and escaped; refuses what could break the line."""
    if isinstance(value, bool) or value is None:
        raise UnsafeArgument(f"AGI argument {value!r}: expected text or a number")
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise UnsafeArgument(f"AGI argument of type {type(value).__name__}: expected text or a number")
    if CONTROL.search(value):
        raise UnsafeArgument("AGI argument with a control character (CR, LF, NUL, ...) refused")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeArgument("AGI argument is not valid Unicode text") from None
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode(command: str, *args: object) -> bytes:
    """`COMMAND arg ...` + LF as bytes; raises UnsafeArgument (nothing encoded) when unsafe."""
    if not isinstance(command, str) or not COMMAND.fullmatch(command) or "  " in command:
        raise UnsafeArgument(f"AGI command name {str(command)[:40]!r} refused")
    line = " ".join([command, *(quote(a) for a in args)]) + "\n"
    data = line.encode("utf-8")
    if len(data) > MAX_LINE:
        raise UnsafeArgument(f"AGI command over {MAX_LINE} bytes refused")
    return data


def sound(name: str) -> str:
    """A sound file name as Asterisk finds it (no spaces, quotes or `..`)."""
    if not isinstance(name, str) or not SOUND.fullmatch(name) or ".." in name:
        raise UnsafeArgument(f"sound file name {str(name)[:60]!r} refused")
    return name


def app_options(*parts: str) -> str:
    """Options for EXEC: comma-separated; a part may not carry a comma, `$`, `|` or a control
    character (the application splits on commas; `${...}` must never be evaluated)."""
    for part in parts:
        if not isinstance(part, str) or CONTROL.search(part) or any(c in part for c in ",$|\\\"{}[]"):
            raise UnsafeArgument(f"application option {str(part)[:60]!r} refused")
    return ",".join(parts)


@dataclass(frozen=True)
class Answer:
    """One answer to a command: `code` 200 with `result`, the text in parentheses (`data`) and
    trailing key=value pairs (`extra`, e.g. endpos); other codes carry their text in `data`."""
    code: int
    result: str = ""
    data: str = ""
    extra: dict = field(default_factory=dict)
    lines: tuple = ()                  # a 520's usage text

    @property
    def ok(self) -> bool:
        return self.code == 200

    def number(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


def parse_answer(line: str) -> Answer | None:
    """The first line of an answer; None when it is not one. A `520-` line begins a usage text
    that the reader completes with `usage_line`."""
    match = ANSWER.fullmatch(line.rstrip("\r\n"))
    if not match:
        return None
    code, sep, rest = int(match.group(1)), match.group(2), match.group(3)
    if code != 200 or sep == "-":
        return Answer(code, data=rest)
    res = RESULT.fullmatch(rest)
    if not res:
        return Answer(code, data=rest)
    result, tail = res.group(1), res.group(2)
    data, extra = "", {}
    paren = DATA.fullmatch(tail)
    if paren:
        data, tail = paren.group(1), paren.group(2)
    for pair in tail.split():
        key, _, value = pair.partition("=")
        extra[key] = value
    return Answer(code, result, data, extra)


def usage_ends(line: str) -> bool:
    """True for the last line of a 520 usage text (`520 End of proper usage.`)."""
    return line.startswith("520 ")


@dataclass(frozen=True)
class Request:
    """What Asterisk said about the call: the agi_ environment (names without `agi_`), the script
    path (`ivr`) and its query parameters (`{"hotline": "62000001"}`, first value of each)."""
    env: dict
    script: str
    params: dict

    @property
    def caller(self) -> str:
        return self.env.get("callerid", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("uniqueid", "")


def parse_env(lines: list[str]) -> Request:
    """The header lines (`agi_name: value`) as a Request; unknown lines are ignored."""
    env: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.rstrip("\r\n").partition(":")
        if sep and key.startswith("agi_"):
            env.setdefault(key[4:], value[1:] if value.startswith(" ") else value)
    script = env.get("network_script") or _script_of(env.get("request", ""))
    path, _, query = script.partition("?")
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return Request(env, path.strip("/"), params)


def _script_of(request: str) -> str:
    """`agi://host:port/ivr?x=1` -> `ivr?x=1` (when agi_network_script is missing)."""
    if "://" in request:
        rest = request.split("://", 1)[1]
        return rest.split("/", 1)[1] if "/" in rest else ""
    return request
