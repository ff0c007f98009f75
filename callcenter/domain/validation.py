"""What a value from outside must look like before the service keeps it or sends it to a PBX.

Pure rules (standard library only), shared by the request models at the web edge, the services,
the configuration and the AMI client's last check before a byte is written. Each checker returns
the normalised value or raises `InvalidValue` with a message for people (in English; the web layer
names the field).
"""
from __future__ import annotations

import re

PHONE = re.compile(r"\+?[0-9]{3,20}")
IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")    # CR, LF, NUL, ... and Unicode line breaks
MAX_TEXT = 2000
MAX_SHORT = 64
AMI_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")     # an AMI header name: a token, no colon or space
MAX_AMI_VALUE = 1024                                       # longer values are refused, never truncated


class InvalidValue(ValueError):
    pass


def phone_number(value: object) -> str:
    """Digits with an optional leading +, 3 to 20 digits (no spaces, dashes or letters)."""
    if not isinstance(value, str) or not PHONE.fullmatch(value):
        raise InvalidValue("expected a phone number: 3 to 20 digits with an optional leading +")
    return value


def identifier(value: object, what: str = "an identifier") -> str:
    """Agent, department, queue, PBX ids: ASCII letters, digits, _ . - (1 to 64, starting alnum)."""
    if not isinstance(value, str) or not IDENT.fullmatch(value):
        raise InvalidValue(f"expected {what}: 1 to 64 of A-Z a-z 0-9 _ . - starting with a letter or digit")
    return value


def single_line(value: object, max_length: int = MAX_SHORT, allow_empty: bool = False) -> str:
    """Free text on one line (pause reasons, names): no control characters, bounded length."""
    if not isinstance(value, str):
        raise InvalidValue("expected a string")
    if not allow_empty and not value.strip():
        raise InvalidValue("expected a non-empty string")
    if len(value) > max_length:
        raise InvalidValue(f"at most {max_length} characters")
    if CONTROL.search(value):
        raise InvalidValue("control characters (CR, LF, NUL, ...) are not allowed")
    return value


def note_text(value: object, max_length: int = MAX_TEXT) -> str:
    """Longer free text (notes, reasons): line breaks allowed, other control characters not."""
    if not isinstance(value, str):
        raise InvalidValue("expected a string")
    if len(value) > max_length:
        raise InvalidValue(f"at most {max_length} characters")
    if CONTROL.search(value.replace("\n", "").replace("\r", "").replace("\t", "")):
        raise InvalidValue("control characters (NUL, ...) are not allowed")
    return value


def ami_safe(value: object) -> bool:
    """True when `value` can be written as one AMI header value (no line break, no control)."""
    return isinstance(value, str) and not CONTROL.search(value)


def ami_field(key: object, value: object) -> str | None:
    """Why `key: value` cannot be written as one AMI header line, or None when it can: the key a
    token, the value one line of valid UTF-8 text of at most MAX_AMI_VALUE characters."""
    if not isinstance(key, str) or not AMI_KEY.fullmatch(key):
        return "the field name must be 1 to 64 of A-Z a-z 0-9 _ - starting with a letter"
    if not isinstance(value, str):
        return "expected text"
    if not ami_safe(value):
        return "control characters (CR, LF, NUL, ...) are not allowed"
    if len(value) > MAX_AMI_VALUE:
        return f"at most {MAX_AMI_VALUE} characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode text (lone surrogate)"
    return None


# a run of 7 or more digits (optionally +) that is not part of a longer number or of a decimal such
# as an Asterisk unique id (1795347500.171)
NUMBER_IN_TEXT = re.compile(r"(?<!\d)(?<!\d\.)\+?\d{7,}(?!\d)(?!\.\d)")


def mask_numbers(text: str) -> str:
    """Every phone-number-like run of 7+ digits in free text masked (logs, error messages)."""
    return NUMBER_IN_TEXT.sub(lambda m: mask_number(m.group()) or "", text)


def mask_number(number: str | None) -> str | None:
    """138****0001: the first three and last four digits of a number kept, the rest hidden (at most
    13 stars, so a huge stored value stays small); short numbers keep only their last two digits."""
    if not number:
        return number
    if len(number) >= 8:
        return number[:3] + "*" * min(len(number) - 7, 13) + number[-4:]
    return "*" * max(len(number) - 2, 1) + number[-2:]
