"""Rates such as "20/s" or "30/min": parsed once, in one place, for the settings and the limiter."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PERIODS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60}
_PERIODS.update({"h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400})


@dataclass(frozen=True)
class Rate:
    """At most `count` uses per window of `seconds`."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count} per {self.seconds} s"


def parse_rate(text: str) -> Rate:
    """ "20/s", "600/min", "10/15min", "1000/hour" -> Rate.

    Raises:
        ValueError: not a rate, with the spellings that are.
    """
    match = re.fullmatch(r"\s*([1-9][0-9]*)\s*/\s*([1-9][0-9]*)?\s*([a-z]+)\s*", text or "")
    if not match or match.group(3) not in _PERIODS:
        raise ValueError(
            f"{text!r} is not a rate; use a number of requests per period, "
            'e.g. "20/s", "100/minute", "10/15min", "1000/hour" or "10000/day"'
        )
    return Rate(int(match.group(1)), int(match.group(2) or 1) * _PERIODS[match.group(3)])


def as_rate(value: Rate | str) -> Rate:
    """A setting's rate as a Rate, whether it was parsed at start or set as text (settings overrides)."""
    return parse_rate(value) if isinstance(value, str) else value
