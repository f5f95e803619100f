"""Time the semantic checks (`run_checks`) on generated workflows of 1k, 10k and 20k tasks.

Each generated task uses the previous one in its prompt, reads an input, and every tenth task fans
out over a list and is reduced by the next, so every check has work to do. Prints seconds for the
compile (parse, lower, load) and for the checks alone, and the growth from 10k to 20k tasks.

    python bench/checks_bench.py [SIZES...]
"""

from __future__ import annotations

import sys
import time

from bmad.compiler.checks import run_checks
from bmad.compiler.compile import compile_source


def generate(tasks: int) -> str:
    lines = ["workflow big {", "  input topic: text", "  input items: list<text>"]
    for i in range(tasks):
        if i % 10 == 1:
            lines.append(f"  task t{i} for each item in items {{ prompt \"{{{{ item }}}} {{{{ t{i - 1} }}}}\" }}")
        elif i % 10 == 2:
            lines.append(f"  task t{i} {{ prompt \"{{{{ t{i - 1} }}}}\" reduce t{i - 1} in chunks of 10 }}")
        elif i == 0:
            lines.append("  task t0 { prompt \"{{ topic }}\" }")
        else:
            lines.append(f"  task t{i} when t{i - 1} != \"\" {{ prompt \"{{{{ topic }}}} {{{{ t{i - 1} }}}}\" }}")
    lines += [f"  output t{tasks - 1}", "}"]
    return "\n".join(lines) + "\n"


def main(sizes: list[int]) -> None:
    timings = {}
    for size in sizes:
        text = generate(size)
        started = time.perf_counter()
        result = compile_source(text, "big.bmad")
        compiled = time.perf_counter() - started
        started = time.perf_counter()
        diagnostics = run_checks(result.program)
        checked = time.perf_counter() - started
        errors = sum(d.is_error for d in diagnostics)
        timings[size] = checked
        print(f"{size:>6} tasks: compile {compiled:6.2f}s (checks included), checks alone {checked:6.3f}s, "
              f"{errors} errors, {len(diagnostics)} diagnostics")
    if 10_000 in timings and 20_000 in timings:
        print(f"checks, 20k / 10k: {timings[20_000] / timings[10_000]:.2f}x (linear is 2x)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 20_000])
