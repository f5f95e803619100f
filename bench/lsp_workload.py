"""Generated .bmad documents of a given size for the language server benchmark."""

from __future__ import annotations

MODELS_HEADER = '''\
# generated for bench/lsp_bench.py
workflow bench {
  about "A long generated workflow"
  budget $50.00 per run
  input topic: text
  input items: list<text> = []

'''


def generate(lines: int) -> str:
    """A valid workflow of about `lines` lines: tasks of 8 lines each, chained by `{{ }}` refs."""
    out = [MODELS_HEADER]
    count = 0
    i = 0
    while count < lines - 12:
        prev = f"{{{{ t{i - 1} }}}}" if i else "{{ topic }}"
        block = (
            f"  task t{i} {{\n"
            f"    prompt \"Step {i} about {{{{ topic }}}} using {prev}\"\n"
            f"    needs writing\n"
            f"    max_tokens 200\n"
            f"    priority {'high' if i % 3 == 0 else 'low'}\n"
            f"    timeout 30s\n"
            f"  }}\n"
            f"\n"
        )
        out.append(block)
        count += block.count("\n")
        i += 1
    out.append(f"  output t{i - 1}\n}}\n")
    return "".join(out)
