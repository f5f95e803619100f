"""A loopback HTTP server answering each request with a canned response: any status, headers and
body, byte for byte (redirects, HTML error pages, error objects in a 200, JSON nested too deep,
echoes of the key...), for the four HTTP protocols.

Each protocol lives under its own prefix, as in `fault_server.py`:

    OpenAI     base_url = {url}/openai/v1     Anthropic  base_url = {url}/anthropic
    Gemini     base_url = {url}/gemini        Ollama     base_url = {url}/ollama

`server.serve(kind, model, Canned(...))` sets what a POST for that model answers (a callable gets
the `Seen` request and returns a `Canned`); `server.serve_get(kind, Canned(...))` what a GET (the
models list of `bmad doctor`) answers. Unset: a normal answer (POST) or a models list (GET). Every
request is recorded in `server.requests`. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

PREFIXES = {"openai": "/openai/v1", "anthropic": "/anthropic", "gemini": "/gemini",
            "ollama": "/ollama"}


@dataclass
class Canned:
    status: int = 200
    body: Any = b""  # bytes or str as given; a dict or list as JSON
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class Seen:
    method: str
    kind: str
    model: str
    path: str
    headers: dict[str, str]
    body: Any


Answer = Union[Canned, Callable[[Seen], Canned]]


def answer_body(kind: str, text: Any = "a fine answer", usage: tuple[int, int] = (10, 5)) -> dict[str, Any]:
    """A well-formed 200 body of `kind` holding `text` and reporting `usage` (input, output)."""
    if kind == "openai":
        return {"id": "x", "object": "chat.completion", "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}}
    if kind == "anthropic":
        return {"id": "x", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}
    if kind == "gemini":
        return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1]}}
    return {"model": "m", "message": {"role": "assistant", "content": text}, "done": True,
            "done_reason": "stop", "prompt_eval_count": usage[0], "eval_count": usage[1]}


def models_body(kind: str) -> dict[str, Any]:
    if kind == "gemini":
        return {"models": [{"name": "models/ok"}]}
    if kind == "ollama":
        return {"models": [{"name": "ok"}]}
    return {"data": [{"id": "ok"}]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: "CannedServer"

    def _kind(self) -> str:
        for kind, prefix in PREFIXES.items():
            if self.path.startswith(prefix + "/"):
                return kind
        return "openai"

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        kind = self._kind()
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        if kind == "gemini" and "/models/" in self.path:
            model = self.path.split("/models/", 1)[1].split(":", 1)[0].split("?", 1)[0]
        seen = Seen(method, kind, model, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.owner.lock:
            self.owner.requests.append(seen)
        if method == "GET":
            canned: Answer = self.owner.gets.get(kind) or Canned(body=models_body(kind))
        else:
            canned = self.owner.posts.get((kind, model)) or Canned(body=answer_body(kind))
        if callable(canned):
            canned = canned(seen)
        payload = canned.payload()
        self.send_response(canned.status)
        self.send_header("Content-Type", canned.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in canned.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self._answer("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._answer("GET")

    def log_message(self, *args: Any) -> None:
        pass


class CannedServer:
    """`with CannedServer() as server:` serves on a free 127.0.0.1 port in a thread."""

    def __init__(self) -> None:
        self.posts: dict[tuple[str, str], Answer] = {}
        self.gets: dict[str, Answer] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"owner": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "CannedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def base_url(self, kind: str) -> str:
        return self.url + PREFIXES[kind]

    def serve(self, kind: str, model: str, answer: Answer) -> None:
        self.posts[(kind, model)] = answer

    def serve_get(self, kind: str, answer: Answer) -> None:
        self.gets[kind] = answer
