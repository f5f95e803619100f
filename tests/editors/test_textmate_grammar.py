"""The VS Code TextMate grammar, tested by tokenizing the examples with VS Code's own engine.

`vscode-textmate` and `vscode-oniguruma` (pinned in package-lock.json here) are installed with
`npm ci` into a cache folder outside the repository (reused while the lock file is unchanged); the
test skips, saying why, when node or npm is missing or the npm registry can't be reached.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GRAMMAR = ROOT / "editors" / "vscode" / "syntaxes" / "bmad.tmLanguage.json"
SPEC = (ROOT / ".." / "shared" / "spec").resolve()
FILES = sorted(SPEC.glob("*.bmad")) + sorted((SPEC / "bad").glob("*.bmad")) + sorted((ROOT / "examples").glob("*.bmad"))


@pytest.fixture(scope="module")
def node_dir() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run VS Code's TextMate engine (vscode-textmate)")
    lock = (HERE / "package-lock.json").read_bytes()
    target = Path(tempfile.gettempdir()) / f"bmad-editor-tests-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (target / "node_modules" / "vscode-textmate").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json", "tokenize.mjs"):
            shutil.copy(HERE / name, target / name)
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=target,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"npm ci could not install vscode-textmate (registry unreachable?): {done.stderr[-400:]}")
    shutil.copy(HERE / "tokenize.mjs", target / "tokenize.mjs")
    return target


def tokenize(node_dir: Path, files: list[Path]) -> dict[str, list[list[dict]]]:
    done = subprocess.run(["node", "tokenize.mjs", str(GRAMMAR), *map(str, files)], cwd=node_dir,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def tokens(node_dir) -> dict[str, list[list[dict]]]:
    assert FILES, "no example files found"
    return tokenize(node_dir, FILES)


def scopes_of(line_tokens: list[dict], text: str) -> list[str]:
    for t in line_tokens:
        if t["text"] == text:
            return t["scopes"]
    raise AssertionError(f"no token {text!r} in {[t['text'] for t in line_tokens]}")


def test_the_grammar_is_valid_json_with_the_bmad_scope():
    grammar = json.loads(GRAMMAR.read_text())
    assert grammar["scopeName"] == "source.bmad"
    package = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text())
    assert package["contributes"]["grammars"][0]["path"] == "./syntaxes/bmad.tmLanguage.json"


def test_every_line_of_every_example_tokenizes_and_covers_the_line(tokens):
    for file, lines in tokens.items():
        source = Path(file).read_text(encoding="utf-8").split("\n")
        for number, (line_tokens, text) in enumerate(zip(lines, source), start=1):
            assert "".join(t["text"] for t in line_tokens) == text.rstrip("\r"), f"{file}:{number}"
            assert all(t["scopes"][0] == "source.bmad" for t in line_tokens)


def test_declarations_keywords_and_comments(tokens):
    for file, lines in tokens.items():
        source = Path(file).read_text(encoding="utf-8").split("\n")
        in_block_string = False
        for line_tokens, text in zip(lines, source):
            if text.count('"""') % 2 == 1:
                in_block_string = not in_block_string
                continue
            if in_block_string:
                continue
            if m := re.match(r"\s*task ([A-Za-z_]\w*)", text):
                assert "storage.type.task.bmad" in scopes_of(line_tokens, "task")
                assert "entity.name.function.task.bmad" in scopes_of(line_tokens, m.group(1)), file
            if m := re.match(r"workflow ([A-Za-z_]\w*)", text):
                assert "entity.name.type.workflow.bmad" in scopes_of(line_tokens, m.group(1))
            if text.startswith("#"):
                assert "comment.line.number-sign.bmad" in line_tokens[0]["scopes"]
            if m := re.match(r"\s*(prompt|needs|depends|budget|strategy|optimize|returns|consensus|about)\b", text):
                assert "keyword.other.bmad" in scopes_of(line_tokens, m.group(1)), f"{file}: {text}"


def test_interpolations_inside_strings_are_marked(tokens):
    seen = 0
    for file, lines in tokens.items():
        for line_tokens in lines:
            for i, t in enumerate(line_tokens):
                if t["text"] == "{{":
                    seen += 1
                    assert "punctuation.section.interpolation.begin.bmad" in t["scopes"]
                    assert any(s.startswith("string.quoted") for s in t["scopes"])
                    name = line_tokens[i + 1] if line_tokens[i + 1]["text"].strip() else line_tokens[i + 2]
                    assert "variable.other.readwrite.bmad" in name["scopes"], (file, name)
    assert seen > 20


def test_strings_end_where_they_end(node_dir, tmp_path):
    sample = tmp_path / "sample.bmad"
    sample.write_text('workflow w {\n  task a {\n    prompt "x {{ b.c }} # not a comment"\n'
                      '    budget $0.50 per run\n    timeout 30s\n  }\n}\n', encoding="utf-8")
    lines = tokenize(node_dir, [sample])[str(sample)]
    assert "comment.line.number-sign.bmad" not in " ".join(s for t in lines[2] for s in t["scopes"])
    assert "punctuation.accessor.bmad" in scopes_of(lines[2], ".")
    assert "constant.numeric.money.bmad" in scopes_of(lines[3], "$0.50")
    assert "constant.numeric.duration.bmad" in scopes_of(lines[4], "30s")
    assert "keyword.other.bmad" in scopes_of(lines[3], "budget")  # the string above did not leak
