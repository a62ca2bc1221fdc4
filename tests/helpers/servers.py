"""Real in-process servers on 127.0.0.1:0 for tests, and what tests talk to them with."""

from __future__ import annotations

import socket
from typing import Any

import grpc

from registry import Registry
from service.client import DigitsClient
from service.generated.digits.v1 import digits_pb2_grpc as pb_grpc
from service.rpc.server import DigitsServer, create_server
from service.settings import ServiceSettings


class Running:
    """A started in-process server and what tests talk to it with."""

    def __init__(self, server: DigitsServer, port: int) -> None:
        self.server = server
        self.port = port
        self.target = f"127.0.0.1:{port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.DigitClassifierStub(self.channel)
        self.client = DigitsClient(self.target, timeout=10)
        # Base URL of the HTTP edge, when the server has one (http_port=free_port()).
        self.http_url = f"http://127.0.0.1:{server.http.port}" if server.http else ""

    def close(self) -> None:
        self.client.close()
        self.channel.close()
        self.server.stop(grace=None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for settings where 0 means off, like http_port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(registry: Registry, registrations: Any = (), **overrides: Any) -> Running:
    """A started server on 127.0.0.1:0 for `registry` (V2 off: tritonclient may share pytest)."""
    values: dict[str, Any] = {
        "host": "127.0.0.1", "port": 0, "metrics_port": -1, "registry": registry.root,
        "poll_interval_s": 0.1, "enable_v2": False, "log_format": "text",
    }  # fmt: skip
    values.update(overrides)
    server, port = create_server(ServiceSettings(**values), registrations=registrations)
    server.start()
    return Running(server, port)
