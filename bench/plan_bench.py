"""Plan large workflows end to end and print the time per size (goal: 10k tasks <= 3 s, linear).

Each workflow is .bmad source: N tasks in a layered DAG (each task reads one or two earlier ones),
a mix of needs, priorities, a `for each`, consensus every 50th task, against the contract catalog.
Compile (front end) and plan (passes) are timed separately; the plan's CPU time too (this process
alone: steadier than wall time on a shared machine). Usage: python bench/plan_bench.py [N...]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import make_context, plan_program

SPEC_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "spec" / "models.bmad"
NEEDS = ["code", "reasoning", "writing", "summarization", "security"]


def workflow_source(n: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    lines = [f'import "{SPEC_MODELS}"', "workflow big {", "  optimize cost", "  budget $500 per run",
             "  input items: list<text> = [\"a\", \"b\", \"c\", \"d\"]"]
    for i in range(n):
        refs = sorted({rng.randrange(i) for _ in range(rng.randint(1, 2))}) if i else []
        prompt = f"Step {i}: " + " ".join(f"{{{{ t{r} }}}}" for r in refs)
        need = rng.choice(NEEDS)
        extra = ""
        if i % 50 == 49:
            extra = " consensus vote among 3 models"
        elif i % 97 == 3:
            extra = " model gpt-4o-mini"
        head = f"  task t{i}" + (" for each x in items" if i % 200 == 0 else "")
        lines.append(f'{head} {{ prompt "{prompt}" needs {need} max_tokens {rng.choice([100, 300, 800])}'
                     f' priority {rng.choice(["low", "medium", "high"])}{extra} }}')
    lines.append(f"  output t{n - 1}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def run(n: int) -> tuple[float, float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bmad"
        path.write_text(workflow_source(n))
        t0 = time.perf_counter()
        result = compile_file(str(path))
        t1, c1 = time.perf_counter(), time.process_time()
        assert result.program is not None, [d.message for d in result.errors][:3]
        program = result.program
        plan, diagnostics = plan_program(program, make_context(program, environment={}, provider_mode="sim"))
        t2, c2 = time.perf_counter(), time.process_time()
        assert plan is not None, [d.message for d in diagnostics if d.is_error][:3]
        return t1 - t0, t2 - t1, c2 - c1, len(plan.tasks)


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1000, 2500, 5000, 10000]
    print(f"{'tasks':>7} {'compile s':>10} {'plan s':>8} {'plan cpu s':>11} {'plan us/task':>13}")
    for n in sizes:
        compile_s, plan_s, plan_cpu_s, planned = run(n)
        print(f"{planned:>7} {compile_s:>10.2f} {plan_s:>8.2f} {plan_cpu_s:>11.2f} {1e6 * plan_s / planned:>13.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
