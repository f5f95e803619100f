"""The budget BMAD-E210 names ("raise the budget to at least $X") is one the plan then accepts:
rounded up at the digits it shows, and worked out with the history the plan uses (its expected
cost counts each model's observed failure rate), whatever budget was asked for."""

from __future__ import annotations

import re

import pytest

from bmad.cli import plan_cmd
from bmad.cli.plan_cmd import compile_and_plan, parse_budget
from bmad.compiler.history import ANY_CAPABILITY, ModelHistory, Observation

# An odd price: the cheapest plan's expected cost has more digits than a message shows.
WORKFLOW = """
provider p { kind sim limits { concurrent 2 } }
model m { provider p price input $2.37 output $9.13 per 1M skills { writing 0.8 } }
workflow w {
  budget $5 per run
  task a { prompt "Answer this customer question politely and precisely: how do I reset it?" model m max_tokens 600 }
  output a
}
"""


def _named_floor(diagnostics) -> float | None:
    found = [d for d in diagnostics if d.code == "BMAD-E210"]
    if not found:
        return None
    help_text = found[0].hint or ""
    return float(re.search(r"at least \$([0-9.,]+)", help_text).group(1).replace(",", ""))


def _plan(path, usd: float):
    return compile_and_plan(str(path), provider="sim", budget=parse_budget(f"${usd!r}"))


def _floors(path, budgets):
    return [_named_floor(_plan(path, usd)[1]) for usd in budgets]


def test_the_named_floor_is_rounded_up_and_fits(tmp_path):
    path = tmp_path / "w.bmad"
    path.write_text(WORKFLOW)
    floor = _named_floor(_plan(path, 0.000001)[1])
    assert floor is not None
    plan, diagnostics, *_ = _plan(path, floor)
    assert plan is not None and "BMAD-E210" not in {d.code for d in diagnostics}


def test_the_named_floor_counts_the_history_the_plan_uses(tmp_path, monkeypatch):
    """Every call of `m` failed once before it answered: the plan expects two tries a call, and
    E210 names that floor for any budget under it, not the no-history one first."""
    path = tmp_path / "w.bmad"
    path.write_text(WORKFLOW)
    without = _named_floor(_plan(path, 0.000001)[1])
    failing = ModelHistory({("m", ANY_CAPABILITY): Observation(failure_rate=1.0, samples=10)})
    monkeypatch.setattr(plan_cmd, "load_history", lambda enabled, **_kw: failing if enabled else None)
    floor = _named_floor(_plan(path, 0.000001)[1])
    assert floor == pytest.approx(2 * without, rel=0.01)
    # the same figure whatever the budget under it, the no-history floor included
    assert set(_floors(path, [0.000001, without, (without + floor) / 2])) == {floor}
    plan, diagnostics, *_ = _plan(path, floor)
    assert plan is not None and "BMAD-E210" not in {d.code for d in diagnostics}


@pytest.mark.parametrize("value, shown", [
    (0.003122, "$0.00313"), (0.0031, "$0.0031"), (0.1 + 0.2, "$0.30"), (0.00618, "$0.00618"),
    (1.234, "$1.24"), (1234.5, "$1,234.50"), (0.0009999, "$0.001"), (float("inf"), "$inf"),
])
def test_an_amount_to_reach_is_rounded_up_at_the_digits_shown(value, shown):
    from bmad.compiler.money import format_usd

    assert format_usd(value, up=True) == shown
    if value != float("inf"):
        assert float(shown[1:].replace(",", "")) >= value - 1e-12
