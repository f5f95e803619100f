"""Dollar amounts as people read them: enough digits to tell two small amounts apart, never "$0.".

Every place that prints money (plans, diagnostics, the CLI, the language server) uses
`format_usd`, so the same amount reads the same everywhere.
"""

from __future__ import annotations

import math


def format_usd(value: float | None, *, unknown: str = "unknown") -> str:
    """`$1,234.50`, `$0.50`, `$0.0123`, `$0.000001`; `unknown` for None (an unpriced model)."""
    if value is None:
        return unknown
    if value == 0:
        return "$0"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1:
        return f"{sign}${value:,.2f}"
    # Three significant digits below a dollar, at least two decimals: $0.50, $0.0123, $0.000001.
    decimals = min(8, max(2, 2 - math.floor(math.log10(value))))
    text = f"{value:.{decimals}f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"
