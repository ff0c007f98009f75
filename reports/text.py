"""Plain-text tables that line up with Chinese (double-width) characters, and the masking of
callers' numbers in lists (`--full-numbers` turns it off)."""
from __future__ import annotations

import re

from callcenter.domain.validation import mask_number, mask_numbers

MAX_CELL = 60                      # display columns; a longer value is cut with "…"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")   # never reaches a terminal (escapes, line breaks)
NUMBER_KEYS = ("caller_num", "number")          # masked whole: 138****0001
TEXT_KEYS = ("caller_name", "note")             # free text: every number-like run masked


def width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def clip(text: str, max_width: int = MAX_CELL) -> str:
    """One line, at most `max_width` display columns (control characters shown as '?')."""
    text = _CONTROL.sub("?", text)
    if width(text) <= max_width:
        return text
    out, used = [], 0
    for ch in text:
        w = width(ch)
        if used + w > max_width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def grid(header: list[str], rows: list[list[str]], max_width: int | list[int] = MAX_CELL) -> list[str]:
    """Columns padded to line up; every cell clipped to `max_width` (one for all, or per column)."""
    limits = max_width if isinstance(max_width, list) else [max_width] * len(header)
    rows = [[clip(c, m) for c, m in zip(r, limits)] for r in rows]
    widths = [max(width(r[i]) for r in [header] + rows) for i in range(len(header))]

    def fmt(r):
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths)).rstrip()
    return [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


def mask_personal(value):
    """A copy of a list's dicts (nested too) with callers' numbers masked."""
    if isinstance(value, list):
        return [mask_personal(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in NUMBER_KEYS and isinstance(item, str):
            out[key] = mask_number(item)
        elif key in TEXT_KEYS and isinstance(item, str):
            out[key] = mask_numbers(item)
        else:
            out[key] = mask_personal(item)
    return out
