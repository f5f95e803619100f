"""`bmad lsp` on the command line: a bad --tcp address is a usage error; --tcp serves LSP on a socket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time


def test_bad_tcp_address_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "bmad", "lsp", "--tcp", "nowhere"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "is not a HOST:PORT address" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_mode_answers_initialize():
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "bmad", "lsp", "--tcp", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # a guard against a server that never listens
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        with conn:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                               "params": {"processId": None, "rootUri": None, "capabilities": {}}}).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += conn.recv(65536)
            reply = json.loads(rest[:length])
        assert reply["id"] == 1
        caps = reply["result"]["capabilities"]
        assert caps["hoverProvider"] and caps["renameProvider"] and caps["documentFormattingProvider"]
        assert reply["result"]["serverInfo"]["name"] == "bmad"
    finally:
        server.terminate()
        server.wait(10)
