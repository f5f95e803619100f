"""`bmad lsp`: run the language server over stdio (editors) or TCP (debugging)."""

from __future__ import annotations

import sys

import typer

from bmad.cli.common import examples, fail_usage

HELP = (
    "Run the bmad language server (diagnostics, hover, completion, navigation, rename, formatting)."
    "\n\nEditors start it over stdio: see docs/editors.md for VS Code and Neovim. With --tcp HOST:PORT "
    "it listens on a socket instead, so a client can attach to a server you watch in a terminal. "
    "The server never calls a model."
)

EPILOG = examples(
    ("bmad lsp", "speak LSP on stdin/stdout (what editors run)"),
    ("bmad lsp --tcp 127.0.0.1:2087", "listen on a TCP port for a client to attach"),
)


def parse_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise fail_usage(f"`{value}` is not a HOST:PORT address", "for example --tcp 127.0.0.1:2087")
    return host, int(port)


def listen_problem(host: str, port: int, exc: OSError | None = None) -> str | None:
    """Why the server can't listen on HOST:PORT, in plain words; None when it can. Checked before
    the server starts (by binding as asyncio's server will, then letting go), and used again for
    an OSError from the server's own bind should the port be taken in between."""
    import errno
    import socket

    if exc is None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (socket.gaierror, UnicodeError) as failed:
            return f"can't resolve the host `{host}` ({getattr(failed, 'strerror', None) or failed})"
        family, kind, proto, _, address = infos[0]
        try:
            with socket.socket(family, kind, proto) as probe:
                if hasattr(socket, "SO_REUSEADDR") and sys.platform != "win32":
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
                probe.bind(address)
        except OSError as failed:
            exc = failed
        else:
            return None
    if isinstance(exc, socket.gaierror):
        return f"can't resolve the host `{host}` ({exc.strerror or exc})"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use (another server, or another `bmad lsp`)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"not allowed to listen on port {port} (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine"
    return f"can't listen on {host}:{port}: {exc.strerror or exc}"


def _bind_error(exc: OSError) -> bool:
    import errno
    import socket

    return isinstance(exc, socket.gaierror) or exc.errno in (
        errno.EADDRINUSE, errno.EACCES, errno.EPERM, errno.EADDRNOTAVAIL)


def register(app: typer.Typer) -> None:
    @app.command("lsp", help=HELP, epilog=EPILOG)
    def lsp(
        tcp: str = typer.Option(None, "--tcp", metavar="HOST:PORT",
                                help="Listen on a TCP socket instead of stdio."),
        stdio: bool = typer.Option(True, "--stdio/--no-stdio", hidden=True,
                                   help="Accepted for editors that always pass --stdio."),
    ) -> None:
        address = parse_address(tcp) if tcp else None
        if address is not None:
            problem = listen_problem(*address)
            if problem is not None:
                raise fail_usage(f"--tcp {tcp}: {problem}",
                                 "pick a free port (e.g. --tcp 127.0.0.1:2087) on an address of this machine")
        from bmad.lsp.server import main  # pygls is heavy: import only when the server runs
        from bmad.lsp.stdio_guard import MessageTooLarge

        try:
            main(address)
        except MessageTooLarge as exc:
            typer.echo(f"bmad lsp: {exc}", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:
            if address is None or not _bind_error(exc):
                raise
            # the port was taken between the check and the server's bind
            raise fail_usage(f"--tcp {tcp}: {listen_problem(*address, exc)}",
                             "pick a free port (e.g. --tcp 127.0.0.1:2087)") from None
