"""The HTML run report and plan page in headless Chromium (Debian's `chromium`), offline.

Chromium renders each page to a PNG (which must not be blank: many distinct colours) and dumps the
DOM after layout (which must hold the report's sections and the SVG drawings). The browser runs
with networking features off and a throwaway profile; the pages themselves load nothing.
Marked slow (run with `-m slow`); skipped when no chromium is installed (`apt-get install -y chromium`; .ci/run installs it).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from report_workflow import plan_report_workflow, run_report_workflow  # noqa: E402

from bmad.compiler.plan_html import render_plan_html  # noqa: E402
from bmad.runtime.journal import Journal  # noqa: E402
from bmad.runtime.report_html import render_run_html  # noqa: E402
from bmad.runtime.run_report import build_run_report  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Slow: two browser starts per page and a pure-Python PNG decode when Pillow is absent (~15 s).
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes): Pillow when installed, else a small zlib decoder."""
    try:
        from PIL import Image
    except ImportError:
        return _decode_png(path.read_bytes())
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        data = rgb.tobytes()
        w, h = rgb.size
        return w, h, [data[i * w * 3:(i + 1) * w * 3] for i in range(h)]


def _decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            a = row[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + a) & 255
            elif kind == 2:
                row[i] = (row[i] + b) & 255
            elif kind == 3:
                row[i] = (row[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(row))
        previous = row
    if channels == 4:  # drop alpha
        rows = [bytes(v for i, v in enumerate(r) if i % 4 != 3) for r in rows]
    return width, height, rows


def distinct_colours(path: Path, step: int = 7) -> int:
    width, height, rows = png_pixels(path)
    seen = set()
    for y in range(0, height, step):
        row = rows[y]
        for x in range(0, width, step):
            seen.add(row[x * 3:x * 3 + 3])
    return len(seen)


def render_in_browser(tmp_path: Path, page: str, name: str) -> tuple[int, str]:
    html = tmp_path / f"{name}.html"
    html.write_text(page, encoding="utf-8")
    shot = tmp_path / f"{name}.png"
    proc = chromium(tmp_path / f"profile-{name}", f"--screenshot={shot}", "--window-size=1280,2000", html.as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    dom = chromium(tmp_path / f"profile-{name}-dom", "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    return distinct_colours(shot), dom.stdout


def test_run_report_renders_in_chromium(tmp_path):
    journal = tmp_path / "runs.db"
    outcome = run_report_workflow(tmp_path, journal, seed=2, failure_rate=0.3)
    j = Journal(journal, readonly=True)
    try:
        page = render_run_html(build_run_report(j, outcome.run_id))
    finally:
        j.db.close()
    colours, dom = render_in_browser(tmp_path, page, "run")
    assert colours >= 8, f"the screenshot looks blank ({colours} colours)"
    for ident in ("summary", "inputs", "outputs", "timeline", "gantt", "cost-by-task", "cost-by-model",
                  "routing", "retries", "escalations", "consensus", "quality", "tasks"):
        assert f'id="{ident}"' in dom, ident
    assert dom.count('class="task-bar"') == 2 and 'class="call-bar"' in dom
    assert "<script" not in dom.lower()  # the hostile input stayed text


def test_plan_page_renders_in_chromium(tmp_path):
    colours, dom = render_in_browser(tmp_path, render_plan_html(plan_report_workflow(tmp_path)), "plan")
    assert colours >= 8, f"the screenshot looks blank ({colours} colours)"
    for ident in ("plan-graph", "node-draft", "node-verdict", "cost-table", "totals"):
        assert f'id="{ident}"' in dom, ident
