"""The chars/4 token estimator's error against tiktoken's cl100k_base on the contract prompts."""

from __future__ import annotations

import glob
from pathlib import Path

from bmad.compiler import ir
from bmad.compiler.compile import compile_file
from bmad.compiler.tokens import TOKENIZER, count_tokens, count_tokens_by_chars

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "spec"


def main() -> None:
    if not TOKENIZER.startswith("tiktoken"):
        print("tiktoken with the offline cl100k_base is not installed: nothing to compare against")
        return
    errors = []
    for path in sorted(glob.glob(str(SPEC / "*.bmad"))):
        program = compile_file(path).program
        for workflow in program.workflows if program else ():
            for task in workflow.tasks:
                for template in (task.system, task.prompt):
                    if isinstance(template, ir.Template):
                        real = count_tokens(template.text)
                        errors.append((count_tokens_by_chars(template.text) - real) / real)
    errors.sort()
    mean_abs = sum(abs(e) for e in errors) / len(errors)
    print(f"{len(errors)} prompts: chars/4 vs cl100k_base, mean |error| {100 * mean_abs:.1f}%, "
          f"range {100 * errors[0]:+.1f}% .. {100 * errors[-1]:+.1f}%")


if __name__ == "__main__":
    main()
