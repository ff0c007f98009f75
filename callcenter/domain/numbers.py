"""Caller numbers in one canonical form, whichever PBX reported them.

Asterisk gives mainland numbers in domestic form (`13800000001`, landlines with the trunk prefix
`02112345678`); Twilio gives E.164 (`+8613800000001`, `+862112345678`); a PBX may also give
`008613800000001` or `+86 138-0000-0001`. One citizen must be one caller everywhere (owner
routing, one open task and one open case per caller and department, the caller's history), so
every caller number is put into canonical form once, where it enters the service:

- spaces, dashes and parentheses are removed;
- `+86` / `0086` + a mobile number (11 digits starting with 1) -> the mobile number;
  `+86` / `0086` + anything else -> a landline with the trunk prefix `0` (`+86 21 12345678` ->
  `02112345678`; a written-out trunk prefix, `+86 (0)21 ...`, is not doubled; fewer than 9
  digits after `+86` is a service number such as 95566, kept without a prefix);
- other international numbers -> E.164 with `+` (`0044...` -> `+44...`);
- withheld and anonymous values (`""`, `<unknown>`, `anonymous`, ...) and anything that is not a
  number (a SIP URI, `client:name`) are returned unchanged;
- anything else (domestic numbers, short numbers such as 12345, extensions) unchanged apart from
  the separators.

`e164` goes the other way for a PBX that dials in E.164 (Twilio): a canonical mainland number ->
`+86...` without the landline's trunk `0`.

Pure: no I/O, no validation beyond the shape (the checks of validation.py still apply where a
value enters or is written to a PBX).
"""
from __future__ import annotations

import re

SEPARATORS = re.compile(r"[\s\-()]")
NUMBER = re.compile(r"\+?[0-9]+")
MOBILE = re.compile(r"1[0-9]{10}")
LANDLINE = re.compile(r"0[1-9][0-9]{8,10}")       # trunk 0, area code, local number: 10 to 12 digits
CHINA = "86"
LANDLINE_DIGITS = 9                                # area code (2-3 digits) + local number (7-8)


def canonical(number: str) -> str:
    """The canonical form of a caller number as a PBX reported it (see the module docstring)."""
    if not isinstance(number, str):
        return number
    n = SEPARATORS.sub("", number)
    if not NUMBER.fullmatch(n):
        return number                              # withheld, anonymous, a URI, garbage: as received
    if n.startswith("00") and len(n) > 4:
        n = "+" + n[2:]
    if not n.startswith("+"):
        return n                                   # domestic, short numbers, extensions
    if not n.startswith("+" + CHINA) or len(n) == 1 + len(CHINA):
        return n                                   # another country's number, in E.164
    national = n[1 + len(CHINA):]
    if MOBILE.fullmatch(national) or national.startswith("0") or len(national) < LANDLINE_DIGITS:
        return national                            # a mobile, a trunk 0 written out, a service number
    return "0" + national


def e164(number: str) -> str | None:
    """A caller number in E.164 for a PBX that dials only E.164 (Twilio): a mainland mobile
    `+86` + the 11 digits, a landline `+86` + the number without its trunk `0`, an international
    number as it is; None for what cannot be dialled that way (short numbers, extensions,
    withheld)."""
    n = canonical(number)
    if not isinstance(n, str):
        return None
    if MOBILE.fullmatch(n):
        return "+" + CHINA + n
    if LANDLINE.fullmatch(n):
        return "+" + CHINA + n[1:]
    if n.startswith("+") and 8 <= len(n) <= 16 and n[1:].isdigit() and n[1] != "0":
        return n
    return None
