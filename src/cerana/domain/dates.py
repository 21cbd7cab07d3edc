"""Dates as TheHive exchanges them: epoch milliseconds.

TheHive 3 accepts a number (epoch ms), a string of digits (epoch ms) or a
string formatted ``yyyyMMdd'T'HHmmssZ`` such as ``20171205T101500+0100``.
"""

from __future__ import annotations

import time
from datetime import datetime

_COMPACT_FORMAT = "%Y%m%dT%H%M%S%z"
# Dates before 1970 or after 9999 are typing mistakes, not incidents.
_MIN_MS = 0
_MAX_MS = 253_402_300_799_999


def now_ms() -> int:
    """Returns the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def parse_date(value: object) -> int:
    """Returns ``value`` as epoch milliseconds.

    Raises ValueError with a reason when the value is none of the accepted
    forms or lies outside years 1970-9999.
    """
    if isinstance(value, bool):
        raise ValueError("a date is a number of milliseconds, not a boolean")
    if isinstance(value, int):
        millis = value
    elif isinstance(value, float) and value.is_integer():
        millis = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        millis = int(value.strip())
    elif isinstance(value, str):
        millis = _parse_compact(value.strip())
    else:
        raise ValueError("a date is epoch milliseconds or yyyyMMddTHHmmssZ")
    if not _MIN_MS <= millis <= _MAX_MS:
        raise ValueError("the date is outside years 1970-9999")
    return millis


def _parse_compact(text: str) -> int:
    try:
        moment = datetime.strptime(text, _COMPACT_FORMAT)
    except ValueError:
        raise ValueError(
            f"'{text[:40]}' is neither epoch milliseconds nor yyyyMMddTHHmmssZ"
        ) from None
    return int(moment.timestamp() * 1000)
