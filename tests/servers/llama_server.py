"""llama-cpp-python's own OpenAI-compatible server, run as a subprocess on a free 127.0.0.1 port.

`with LlamaServer(model_path, aliases=("gemma-a", "gemma-b")) as s:` serves the GGUF under each
alias (a config file with one entry per alias), so a workflow can treat them as two models.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, model_path: str | Path, aliases: tuple[str, ...] = ("gemma",),
                 n_ctx: int = 2048, startup_timeout_s: float = 180.0,
                 chat_format: str | None = "gemma"):
        self.model_path = Path(model_path)
        self.aliases = aliases
        self.n_ctx = n_ctx
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.startup_timeout_s = startup_timeout_s
        # The embedded Gemma GGUF has no chat template; llama.cpp's `gemma` turn format suits it.
        self.chat_format = chat_format
        self._dir = tempfile.TemporaryDirectory(prefix="bmad-llama-server-")
        self._proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self._dir.name) / "server.log"

    def __enter__(self) -> "LlamaServer":
        config = {"host": "127.0.0.1", "port": self.port,
                  "models": [{"model": str(self.model_path), "model_alias": alias,
                              "n_ctx": self.n_ctx, "verbose": False,
                              **({"chat_format": self.chat_format} if self.chat_format else {})}
                             for alias in self.aliases]}
        config_path = Path(self._dir.name) / "config.json"
        config_path.write_text(json.dumps(config))
        log = self.log.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("llama_cpp.server did not start in time")
            time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._dir.cleanup()
