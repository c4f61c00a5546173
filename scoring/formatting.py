"""Points as people read them: exact, signed, without trailing zeros."""

from __future__ import annotations

from decimal import Decimal


def format_number(value: Decimal) -> str:
    """100 → "100", 99.50 → "99.5", -3 → "-3": no exponent, no trailing zeros."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        return f"{normalized.to_integral_value():f}"
    return f"{normalized:f}"


def signed(value: Decimal) -> str:
    """+5, -150, 0: points with their sign, no trailing zeros."""
    return ("+" if value > 0 else "") + format_number(value)
