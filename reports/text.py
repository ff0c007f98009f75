"""Plain-text tables that line up with Chinese (double-width) characters."""
from __future__ import annotations


def width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(width(r[i]) for r in [header] + rows) for i in range(len(header))]

    def fmt(r):
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths)).rstrip()
    return [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
