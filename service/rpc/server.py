"""The gRPC server: digits.v1, health, reflection (and V2) over one ServingCore; clean shutdown.

A grpc.aio server runs on its own event loop in a dedicated thread (service.rpc.loop_thread); the
`DigitsServer` wrapper keeps a synchronous interface (start / stop / wait_for_termination) for
the CLI, the tests and the benchmark. Why aio and not the thread-pool server: docs/service.md.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from registry import StoreConfigurationError
from service.generated.digits.v1 import digits_pb2 as pb
from service.observability.logs import configure_logging
from service.rpc import digits_v1
from service.rpc.accounting import GoneClientAccounting
from service.rpc.keepalive import connection_options
from service.rpc.loop_thread import LoopThread
from service.serving.core import ServingCore
from service.serving.served import ServedModel
from service.settings import ServiceSettings

if TYPE_CHECKING:
    from service.http.server import HttpEdge

__all__ = ["DigitsServer", "Registration", "create_server", "serve"]

logger = logging.getLogger("service.rpc.server")

DIGITS_SERVICE = pb.DESCRIPTOR.services_by_name["DigitClassifier"].full_name
# Adds servicers to the (grpc.aio) server and returns the full names of the services it added.
# Their handlers are `async def` and run on the server's event loop (handle_errors insists).
Registration = Callable[[grpc.aio.Server, ServingCore], Iterable[str] | None]


class DigitsServer:
    """A grpc.aio server (on its loop thread) with its ServingCore, health and Prometheus endpoint.

    Every method is synchronous and may be called from any thread but the loop's.
    """

    def __init__(
        self,
        grpc_server: grpc.aio.Server,
        core: ServingCore,
        health_servicer: health_aio.HealthServicer,
        services: Sequence[str],
        settings: ServiceSettings,
        loop: LoopThread,
        http: HttpEdge | None = None,
    ) -> None:
        self.grpc_server = grpc_server
        self.http = http
        self.loop = loop
        self.core = core
        self.health = health_servicer
        self.services = tuple(services)
        self.settings = settings
        self.metrics_port: int | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def start(self) -> None:
        """Start serving; health turns SERVING as soon as a default model is loaded."""
        self.core.models.on_swap.append(self._on_model)
        if self.settings.metrics_port >= 0:  # first: a port in use fails before the model loads
            host = self.settings.metrics_host or self.settings.host
            self.metrics_port = self.core.metrics.start_http(host, self.settings.metrics_port)
        try:
            self.core.start()  # loads the model now when the registry has one
        except BaseException:  # e.g. StoreConfigurationError: release the bound ports
            self.loop.call(_stop_edges(self.grpc_server, self.http, None))
            self.core.stop()
            self.loop.stop()
            self.core.metrics.stop_http()
            raise
        self.loop.call(self.grpc_server.start())
        if self.http is not None:
            self.loop.call(self.http.start())
        if self.core.ready:
            self._set_health(health_pb2.HealthCheckResponse.SERVING)
        logger.info("digits server started", extra={"services": list(self.services)})

    def stop(self, grace: float | None = None, drain_delay: float = 0.0) -> None:
        """Health NOT_SERVING, for `drain_delay` s still accepting requests (load balancers
        notice), then refuse new RPCs and let in-flight ones finish within `grace` s."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self.loop.call(self.health.enter_graceful_shutdown())  # NOT_SERVING, for good
            if self.http is not None:
                self.http.drain()  # /v2/health/ready answers 503 from now on
            if drain_delay > 0:
                logger.info("health NOT_SERVING; still accepting requests",
                            extra={"drain_delay_s": drain_delay})  # fmt: skip
                time.sleep(drain_delay)
            logger.info("draining", extra={"grace_s": grace})
            # Refuses new calls at once; in-flight ones get `grace` s (None: cancelled now).
            self.loop.call(_stop_edges(self.grpc_server, self.http, grace))
            self.core.stop()
            self.loop.stop()
            self.core.metrics.stop_http()
            self._stopped.set()
            logger.info("digits server stopped")

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until stop() has finished (or timeout); True when stopped."""
        return self._stopped.wait(timeout)

    def _on_model(self, model: ServedModel) -> None:
        self._set_health(health_pb2.HealthCheckResponse.SERVING)

    def _set_health(self, status: int) -> None:
        update = _set_all(self.health, ("", *self.services), status)
        if self.loop.in_loop:  # e.g. a model swap triggered by a handler: do not block the loop
            self.loop.submit(update)
        else:
            self.loop.call(update)


async def _stop_edges(
    grpc_server: grpc.aio.Server, http: HttpEdge | None, grace: float | None
) -> None:
    """Stop both edges at once, so each gets the whole grace period."""
    if http is None:
        await grpc_server.stop(grace)
    else:
        await asyncio.gather(grpc_server.stop(grace), http.stop(grace))


async def _set_all(
    servicer: health_aio.HealthServicer,
    names: Sequence[str],
    status: int,
) -> None:
    for name in names:
        await servicer.set(name, status)


def create_server(
    settings: ServiceSettings,
    core: ServingCore | None = None,
    *,
    registrations: Sequence[Registration] = (),
) -> tuple[DigitsServer, int]:
    """Build (not start) the server and bind its port; returns it and the bound port.

    `registrations` add more servicers over the same core. When settings.enable_v2 is set and
    `service.rpc.v2` exists, its `register_v2(server, core)` is called as well.
    """
    core = core or ServingCore.from_settings(settings)
    loop = LoopThread(kind=settings.event_loop)
    try:
        grpc_server, health_servicer, services, port = loop.call(
            _build(settings, core, registrations)
        )
    except BaseException:
        loop.stop()
        raise
    try:
        http = _http_edge(settings, core)
    except BaseException:
        loop.call(grpc_server.stop(None))
        loop.stop()
        raise
    server = DigitsServer(
        grpc_server, core, health_servicer, services, settings, loop=loop,
        http=http,
    )  # fmt: skip
    return server, port


def _http_edge(settings: ServiceSettings, core: ServingCore) -> HttpEdge | None:
    """The HTTP/REST edge on settings.http_port (bound now), or None when it is 0 (off)."""
    if not settings.http_port:
        return None
    from service.http.server import HttpEdge  # Starlette and uvicorn only when asked for

    return HttpEdge(settings, core)


async def _build(
    settings: ServiceSettings,
    core: ServingCore,
    registrations: Sequence[Registration],
) -> tuple[grpc.aio.Server, health_aio.HealthServicer, list[str], int]:
    """Create the grpc.aio server on the running loop, register everything and bind the port."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),  # a port in use must fail loudly, not be shared
        *connection_options(settings),
    ]
    accounting = GoneClientAccounting(core.metrics, ())
    grpc_server = grpc.aio.server(options=options, interceptors=[accounting])
    digits_v1.register(grpc_server, core, max_streams=settings.max_streams)
    services = [DIGITS_SERVICE]
    for register in (*registrations, *_optional_v2(settings)):
        services += list(register(grpc_server, core) or ())
    accounting.prefixes = tuple(f"/{name}/" for name in services)  # health, reflection: not ours
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    for name in ("", *services):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if settings.reflection:
        names = (*services, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, grpc_server)
    port = _bind(grpc_server, settings)
    return grpc_server, health_servicer, services, port


def _optional_v2(settings: ServiceSettings) -> list[Registration]:
    """The Open Inference Protocol adapter's hook, when enabled and installed."""
    if not settings.enable_v2 or importlib.util.find_spec("service.rpc.v2") is None:
        return []
    module = importlib.import_module("service.rpc.v2")
    return [module.register_v2]


def _bind(grpc_server: grpc.aio.Server, settings: ServiceSettings) -> int:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.port}"
    try:
        if settings.tls_cert is None or settings.tls_key is None:
            return int(grpc_server.add_insecure_port(address))
        client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        return int(grpc_server.add_secure_port(address, credentials))
    except RuntimeError as err:  # grpc's "Failed to bind": make it an OSError, one CLI line
        raise OSError(
            f"cannot listen on {address}: address in use or unavailable (choose another port "
            "with --port or DIGITS_PORT, make run PORT=...; 0 picks a free one; the address "
            "with --host or DIGITS_HOST)"
        ) from err


def serve(settings: ServiceSettings) -> int:
    """Run until SIGTERM/SIGINT, then drain within settings.grace_s; returns an exit code."""
    configure_logging(settings.log_format, settings.log_level)
    _limit_blas_threads(settings.blas_threads)
    server, port = create_server(settings)
    try:
        server.start()
    except StoreConfigurationError as err:
        # Wrong or missing credentials or no such bucket: waiting would not fix it. An OSError
        # is what `digits` prints as one line with exit code 1.
        raise OSError(str(err)) from None

    def on_signal(signum: int, frame: object) -> None:
        logger.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        # SIGTERM comes from orchestrators, whose load balancers need the drain delay to stop
        # routing here; SIGINT from a person at a terminal, who wants the server gone now.
        drain = settings.drain_delay_s if signum == signal.SIGTERM else 0.0
        # stop() blocks for up to drain_delay_s + grace_s: run it off the signal handler.
        threading.Thread(target=server.stop, args=(settings.grace_s, drain), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Logged once the handlers are in place: whoever waits for this line may signal at once.
    logger.info(
        "listening",
        extra={"address": f"{settings.host}:{port}", "tls": settings.tls,
               "mtls": settings.tls_client_ca is not None, "metrics_port": server.metrics_port,
               "http_port": server.http.port if server.http else None,
               "model": server.core.models.name, "registry": str(settings.registry)},
    )  # fmt: skip
    while not server.wait_for_termination(timeout=0.5):
        pass  # short waits keep the main thread responsive to signals
    return 0


def _limit_blas_threads(threads: int) -> None:
    """Cap BLAS threads process-wide (without threadpoolctl, OPENBLAS_NUM_THREADS does it)."""
    if threads <= 0:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        logger.warning(
            "threadpoolctl is not installed; set OPENBLAS_NUM_THREADS=%d instead", threads
        )
        return
    threadpool_limits(limits=threads, user_api="blas")  # stays in effect for the process
