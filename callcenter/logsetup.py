"""Logging of the command line: one stderr handler, and a filter that masks anything that looks
like a phone number (7+ digits) in every record, tracebacks included.

The filter is the second line of defence: log calls that format a caller's number mask it
themselves (`validation.mask_number`), and the database engine never logs SQL parameters
(`hide_parameters`). Libraries that log requests at debug level (aiosqlite's statements, the
Twilio client's request bodies) are caught here too.
"""
from __future__ import annotations

import logging
import sys

from .domain.validation import mask_numbers

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_traceback = logging.Formatter()


class MaskNumbers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:                       # a broken format string: show it, masked, as it is
            message = f"{record.msg} {record.args}"
        record.msg, record.args = mask_numbers(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_numbers(record.stack_info)
        return True


def configure(verbose: bool) -> None:
    """Debug logging with -v, else info; every handler of the root logger masks numbers."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT, stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)    # one debug line per statement, nothing else
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskNumbers) for f in handler.filters):
            handler.addFilter(MaskNumbers())
