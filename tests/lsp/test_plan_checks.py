"""The second diagnostics stage in its helper process: the same findings as `bmad check`, newest first."""

from __future__ import annotations

import asyncio

from bmad.cli.check_cmd import check_files
from bmad.lsp.plan_checks import PlanChecker

BUDGET = """\
provider openai { kind openai api_key env OPENAI_API_KEY }
model strong {
  provider openai
  price input $2.50 output $10.00 per 1M
  context 128k
  skills { reasoning 0.9 }
}

workflow w {
  budget $0.000001 per run
  task a {
    prompt "Write a long essay."
    needs reasoning
    max_tokens 4000
  }
  output a
}
"""


def test_the_helper_finds_what_bmad_check_finds_and_drops_superseded_requests(tmp_path):
    path = tmp_path / "budget.bmad"
    path.write_text(BUDGET, encoding="utf-8")
    expected = [d for d in check_files([str(path)])[0] if d.code.startswith("BMAD-E2")]
    assert expected
    checker = PlanChecker()

    async def three_versions():
        fine = BUDGET.replace("$0.000001", "$50")
        return await asyncio.gather(
            checker.check(str(path), BUDGET, {}),  # runs at once
            checker.check(str(path), fine, {}),  # superseded while it waits
            checker.check(str(path), BUDGET, {}))  # the newest: runs next

    try:
        first, second, third = asyncio.run(three_versions())
    finally:
        checker.shutdown()
    assert second is None
    for found in (first, third):
        assert [d for d in found if d.code.startswith("BMAD-E2")] == expected
