"""Mounts for tests of a journal on a full disk or read-only media: root only (skipped elsewhere),
always unmounted (lazily if busy)."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def _unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _need_root(what: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(f"{what} needs root")


@contextmanager
def mounted_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `where`."""
    _need_root("mounting a tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        _unmount(where)


@contextmanager
def read_only_view(source: Path, where: Path) -> Iterator[Path]:
    """`source` seen read-only at `where` (a read-only bind mount: root ignores file modes)."""
    _need_root("a read-only bind mount")
    where.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "--bind", str(source), str(where)], capture_output=True).returncode:
        pytest.skip("can't bind-mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(where)],
                          capture_output=True).returncode:
            pytest.skip("can't remount read-only here")
        yield where
    finally:
        _unmount(where)
