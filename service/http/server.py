"""HttpEdge: uvicorn serving the HTTP app as a task on the gRPC server's event loop.

One process, one event loop, one ServingCore: the grpc.aio server and uvicorn share the loop
thread (service/rpc/loop_thread.py), so both protocols go through the same batcher, models and
metrics. The socket is bound up front (a busy port fails `create_server`, like gRPC's).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import uvicorn

from service.http.app import build_app
from service.http.v2 import V2Rest
from service.serving.core import ServingCore
from service.settings import ServiceSettings

__all__ = ["HttpEdge"]

_START_TIMEOUT_S = 10.0


class HttpEdge:
    """The HTTP/REST edge of one server; start() and stop() run on the server's loop."""

    def __init__(self, settings: ServiceSettings, core: ServingCore) -> None:
        self.v2 = V2Rest(core, max_body_bytes=settings.max_message_bytes)
        self.host = settings.http_host or settings.host
        self._socket = _bind(self.host, settings.http_port)
        self.port: int = self._socket.getsockname()[1]
        client_ca = settings.tls_client_ca
        config = uvicorn.Config(
            build_app(settings, core, self.v2),
            lifespan="off",
            log_config=None,  # keep the server's logging setup (service/observability/logs.py)
            log_level="warning",  # uvicorn's start/stop chatter stays out of the server log
            access_log=False,
            server_header=False,
            ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
            ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
            ssl_ca_certs=str(client_ca) if client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
            timeout_graceful_shutdown=int(settings.grace_s) or None,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self._server.config.is_ssl else "http"

    async def start(self) -> None:
        """Serve as a task on the running loop; returns once uvicorn listens."""
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._socket]), name="http-edge"
        )
        deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_S
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the HTTP edge stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the HTTP edge did not start")
            await asyncio.sleep(0.005)

    def drain(self) -> None:
        """Readiness turns 503; requests are still served until stop()."""
        self.v2.draining = True

    async def stop(self, grace: float | None) -> None:
        """Stop listening; in-flight requests get `grace` s (None: close at once)."""
        self.v2.draining = True
        if self._task is None:
            self._socket.close()
            return
        if grace is None:
            self._server.force_exit = True
        else:
            # uvicorn passes it to asyncio.wait_for, which takes fractions of a second too
            self._server.config.timeout_graceful_shutdown = max(grace, 0.1)  # type: ignore[assignment]
        self._server.should_exit = True
        await self._task


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6 by the address); OSError if busy."""
    try:
        family = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host.strip("[]"), port), family=family, backlog=2048)
    except OSError as err:
        raise OSError(f"cannot listen on {host}:{port} (HTTP): {err.strerror or err}") from err
