"""Benchmark the language server through a real LSP client over stdio (not a test: prints figures).

Starts `python -m bmad lsp` as a subprocess, opens a generated workflow of 1,000 and of 10,000
lines, and measures, with a pygls client:

- didChange -> publishDiagnostics: a one-character edit (typing one more letter into a task's
  prompt, so no text ever repeats and no cached compile can answer), then the time until the
  server publishes diagnostics for that version.
  Edits are paced like typing that pauses (the next edit is sent after the previous publish plus
  `--pause` seconds), which is the case the leading-edge debounce serves at once;
- completion inside `{{ }}` and hover on a task name (1,000-line file), each request's round trip.

Usage: python bench/lsp_bench.py [--edits N] [--requests N] [--sizes 1000,10000] [--pause 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lsp_workload import generate  # noqa: E402


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def describe(name: str, values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (f"{name:<44} n={len(ms):<4} p50={statistics.median(ms):8.1f} ms  p95={p95(ms):8.1f} ms  "
            f"max={max(ms):8.1f} ms")


class Bench:
    def __init__(self) -> None:
        self.client = LanguageClient("bmad-bench", "1")
        self.published: dict[tuple[str, int | None], float] = {}
        self.waiters: dict[tuple[str, int | None], asyncio.Future] = {}
        self.cpu_per_edit_s: float | None = None

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_publish(params: types.PublishDiagnosticsParams) -> None:
            key = (params.uri, params.version)
            self.published.setdefault(key, time.perf_counter())
            fut = self.waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(self.published[key])

    async def start(self, root: Path) -> None:
        await self.client.start_io(sys.executable, "-m", "bmad", "lsp")
        await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=root.as_uri()))
        self.client.initialized(types.InitializedParams())

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    async def published_at(self, uri: str, version: int) -> float:
        key = (uri, version)
        if key in self.published:
            return self.published[key]
        fut = asyncio.get_running_loop().create_future()
        self.waiters[key] = fut
        return await asyncio.wait_for(fut, 120)

    async def open(self, path: Path, text: str) -> str:
        uri = path.as_uri()
        path.write_text(text, encoding="utf-8")
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="bmad", version=1, text=text)))
        await self.published_at(uri, 1)
        return uri

    async def edits(self, uri: str, text: str, count: int, pause: float) -> list[float]:
        # the prompt line of a task in the middle of the file
        lines = text.split("\n")
        target = next(i for i in range(len(lines) // 2, len(lines)) if lines[i].strip().startswith("prompt"))
        column = lines[target].index('"') + 1
        times = []
        version = 1
        pid = self.client._server.pid if getattr(self.client, "_server", None) else None
        cpu_before = process_cpu_s(pid) if pid else None
        for n in range(count):
            version += 1
            at = types.Position(line=target, character=column + n)
            change = types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at),
                                                            text="abcdefghij"[n % 10])
            sent = time.perf_counter()
            self.client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[change]))
            times.append(await self.published_at(uri, version) - sent)
            await asyncio.sleep(pause)
        cpu_after = process_cpu_s(pid) if pid else None
        self.cpu_per_edit_s = (cpu_after - cpu_before) / count if None not in (cpu_before, cpu_after) else None
        return times

    async def completions(self, uri: str, text: str, count: int) -> list[float]:
        lines = text.split("\n")
        target = next(i for i in range(len(lines) // 2, len(lines)) if "{{ topic }}" in lines[i])
        position = types.Position(line=target, character=lines[target].index("{{ topic }}") + 3)
        times = []
        for _ in range(count):
            sent = time.perf_counter()
            result = await self.client.text_document_completion_async(types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=position))
            times.append(time.perf_counter() - sent)
            assert result is not None
        return times

    async def hovers(self, uri: str, text: str, count: int) -> list[float]:
        lines = text.split("\n")
        target = next(i for i in range(len(lines) // 2, len(lines)) if lines[i].strip().startswith("task "))
        position = types.Position(line=target, character=lines[target].index("task ") + 6)
        times = []
        for _ in range(count):
            sent = time.perf_counter()
            result = await self.client.text_document_hover_async(types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=position))
            times.append(time.perf_counter() - sent)
            assert result is not None
        return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between a publish and the next edit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench = Bench()
        await bench.start(root)
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                text = generate(size)
                uri = await bench.open(root / f"bench{size}.bmad", text)
                edits = args.edits if size <= 1000 else max(6, args.edits // 3)
                print(describe(f"didChange -> publishDiagnostics, {size} lines", await bench.edits(uri, text, edits, args.pause)))
                if bench.cpu_per_edit_s is not None:  # the work itself, whatever else the machine runs
                    print(f"  server CPU per edit (plan-check helper not included): {bench.cpu_per_edit_s * 1000:.0f} ms")
                if size <= 1000:
                    print(describe(f"completion in {{{{ }}}}, {size} lines", await bench.completions(uri, text, args.requests)))
                    print(describe(f"hover on a task, {size} lines", await bench.hovers(uri, text, args.requests)))
                sys.stdout.flush()
        finally:
            await bench.stop()


if __name__ == "__main__":
    asyncio.run(main())
