"""How a fraction is shown to people: one rule for every page, the admin and the serving decision."""

from __future__ import annotations


def percent(fraction) -> int | None:
    """A fraction (0.9649) as whole percent (96), the way every page shows accuracy; None stays None."""
    if fraction is None:
        return None
    return round(float(fraction) * 100)


def percent_text(fraction, missing: str = "—") -> str:
    """ "96%" for 0.9649, `missing` for None."""
    value = percent(fraction)
    return missing if value is None else f"{value}%"
