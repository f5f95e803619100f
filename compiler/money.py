"""Dollar amounts as people read them: enough digits to tell two small amounts apart, never "$0.".

Every place that prints money (plans, diagnostics, the CLI, the language server) uses
`format_usd`, so the same amount reads the same everywhere.
"""

from __future__ import annotations

import math


def format_usd(value: float | None, *, unknown: str = "unknown", up: bool = False) -> str:
    """`$1,234.50`, `$0.50`, `$0.0123`, `$0.000001`; `unknown` for None (an unpriced model).

    `up`: rounded up to the digits shown, for an amount to reach (a budget "at least" this): read
    back, it is never under `value`."""
    if value is None:
        return unknown
    if value == 0:
        return "$0"
    if up and 0 < value < math.inf:
        value = _round_up_shown(value)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1:
        return f"{sign}${value:,.2f}"
    # Three significant digits below a dollar, at least two decimals: $0.50, $0.0123, $0.000001.
    decimals = min(8, max(2, 2 - math.floor(math.log10(value))))
    text = f"{value:.{decimals}f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


def _round_up_shown(value: float) -> float:
    """`value` rounded up at the last digit `format_usd` shows (float noise aside: 0.0031 stays)."""
    decimals = 2 if value >= 1 else min(8, max(2, 2 - math.floor(math.log10(value))))
    scale = 10 ** decimals
    scaled = value * scale
    return math.ceil(scaled - 1e-9 * max(1.0, scaled)) / scale
