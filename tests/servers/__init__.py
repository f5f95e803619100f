"""Test servers on 127.0.0.1: a fault-injecting ASGI app speaking each provider protocol."""
