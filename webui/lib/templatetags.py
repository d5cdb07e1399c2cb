"""Template filters every template can use without {% load %} (TEMPLATES' "builtins")."""

from __future__ import annotations

from django import template

from webui.lib.numbers import percent_text

register = template.Library()


@register.filter(name="percent")
def percent_filter(fraction) -> str:
    """{{ version.accuracy|percent }} -> "96%" (or "—")."""
    return percent_text(fraction)
