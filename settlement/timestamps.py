"""Event time: integer milliseconds since the Unix epoch, or RFC 3339 with an explicit offset."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

# ASCII digits only: Python's \d would take fullwidth or Arabic-Indic digits for a date
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII)
_EPOCH = datetime(1970, 1, 1)
MAX_MS = 2**63 - 1


class TimestampError(ValueError):
    """Why a timestamp is not accepted (the text is the detail of a `bad_timestamp`)."""


def parse_rfc3339_ms(text: str) -> int:
    """Milliseconds since the epoch; digits below 1 ms are truncated, never rounded."""
    match = _RFC3339.fullmatch(text)
    if not match:
        raise TimestampError(f"{text!r} is not RFC 3339 with an explicit offset "
                             "(e.g. 2026-11-24T10:00:00Z or 2026-11-24T10:00:00.123+02:00)")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError as exc:
        raise TimestampError(f"{text!r} is not a real date and time: {exc}") from None
    if offset in ("Z", "z"):
        delta = timedelta(0)
    else:
        sign = 1 if offset[0] == "+" else -1
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise TimestampError(f"{text!r} has an impossible UTC offset {offset}")
        delta = sign * timedelta(hours=oh, minutes=om)
    # whole seconds in integers: no datetime arithmetic, so no overflow at the calendar's edges
    # (0001-01-01T00:00:00+01:00 is before year 1 in UTC, and simply before 1970 here)
    local_seconds = (moment - _EPOCH) // timedelta(seconds=1)
    offset_seconds = delta // timedelta(seconds=1)
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    ms = (local_seconds - offset_seconds) * 1000 + millis
    if ms < 0:
        raise TimestampError(f"{text!r} is before 1970")
    return ms


def parse_timestamp_ms(value) -> int:
    """A JSON integer (ms), a string of decimal digits (ms) or an RFC 3339 string."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TimestampError(f"{value!r} is not an integer number of milliseconds (floats are invalid)")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        if value.isdigit() and value.isascii():
            ms = int(value)
        elif value.startswith("-") and value[1:].isdigit() and value.isascii():
            raise TimestampError(f"{value!r} is before 1970")
        else:
            ms = parse_rfc3339_ms(value)
    else:
        raise TimestampError(f"{value!r} is neither integer milliseconds nor an RFC 3339 string")
    if ms < 0:
        raise TimestampError(f"{value!r} is before 1970")
    if ms > MAX_MS:
        raise TimestampError(f"{value!r} is beyond the int64 millisecond range")
    return ms


def epoch_of(timestamp_ms: int, epoch_seconds: int) -> int:
    """SPEC §2: floor(timestamp_ms / 1000 / epoch_seconds), exactly, in integers."""
    return timestamp_ms // (1000 * epoch_seconds)
