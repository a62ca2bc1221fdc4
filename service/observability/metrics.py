"""Prometheus metrics of one server, in its own registry, with a stoppable HTTP endpoint."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.exposition import generate_latest

from service.observability.hot_metrics import CounterSeries, HistogramSeries, HotMetrics

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
_BATCH_BUCKETS = tuple(float(2**i) for i in range(14))  # 1 .. 8192 rows


class ServiceMetrics:
    """Counters and histograms of one server; a private CollectorRegistry so servers can coexist."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Observed per request, so our lighter series (hot_metrics.py says why).
        hot = HotMetrics()
        self._requests = hot.counter(
            "digits_requests", "RPCs handled, by method and status code", ["method", "code"]
        )
        self._latency = hot.histogram(
            "digits_request_latency_seconds", "RPC handling time, by method", _LATENCY_BUCKETS,
            ["method"],
        )  # fmt: skip
        self._batch_rows = hot.histogram(
            "digits_batch_rows", "Rows per forward pass (after dynamic batching)", _BATCH_BUCKETS
        ).labels()
        self._batch_requests = hot.histogram(
            "digits_batch_requests", "Requests coalesced into one forward pass", _BATCH_BUCKETS
        ).labels()
        self._queue_delay = hot.histogram(
            "digits_queue_delay_seconds", "Time a request waited in the batcher queue",
            _LATENCY_BUCKETS,
        ).labels()  # fmt: skip
        # The HTTP edge's requests: the same methods (ModelInfer, ServerReady, ...) with the HTTP
        # status as `code`. Own names, so the gRPC series keep their labels and dashboards.
        self._http_requests = hot.counter(
            "digits_http_requests", "HTTP requests handled, by method and HTTP status",
            ["method", "code"],
        )  # fmt: skip
        self._http_latency = hot.histogram(
            "digits_http_request_latency_seconds", "HTTP request handling time, by method",
            _LATENCY_BUCKETS, ["method"],
        )  # fmt: skip
        self._http_children: dict[tuple[str, int], tuple[CounterSeries, HistogramSeries]] = {}
        r.register(hot)  # before the gauges, so /metrics keeps its order
        # One acquire per observe_* call, so a scrape never sees a request counted but not timed.
        self._hot_lock = hot.lock
        self.model_info = Gauge(
            "digits_model_info", "1 for the model version served by default", ["name", "version"],
            registry=r,
        )  # fmt: skip
        self.model_version = Gauge(
            "digits_model_version", "Registry version served by default (0 = none)", registry=r
        )
        self.reloads = Counter("digits_model_reloads", "Successful model swaps", registry=r)
        # process_cpu_seconds_total, process_resident_memory_bytes, ...: read at scrape time
        # from /proc (Linux); the dashboard and bench/monitoring.py (CPU per request) use them.
        ProcessCollector(registry=r)
        self.reload_failures = Counter(
            "digits_model_reload_failures", "New versions refused (verification or load failed)",
            registry=r,
        )  # fmt: skip
        self.registry_reachable = Gauge(
            "digits_registry_reachable",
            "1 while the last registry poll reached the store, 0 while it cannot (the last "
            "verified model keeps serving)", registry=r,
        )  # fmt: skip
        self.registry_reachable.set(1)
        self._lock = threading.Lock()
        self._served: tuple[str, str] | None = None
        self._http: WSGIServer | None = None
        self._children: dict[tuple[str, int], tuple[CounterSeries, HistogramSeries]] = {}

    def observe_request(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        # Keyed by id(code): StatusCode members are singletons, and hashing an Enum runs Python
        # code (Enum.__hash__), ~0.1 us of this ~0.65 us method.
        key = (method, id(code))
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a key: do it once per label set
            children = self._requests.labels(method, code.name), self._latency.labels(method)
            self._children[key] = children
        self._count_and_time(children, seconds)

    def observe_http(self, method: str, status: int, seconds: float) -> None:
        """Count and time one request of the HTTP edge (`status`: the HTTP status code sent)."""
        key = (method, status)
        children = self._http_children.get(key)
        if children is None:
            children = (
                self._http_requests.labels(method, str(status)),
                self._http_latency.labels(method),
            )
            self._http_children[key] = children
        self._count_and_time(children, seconds)

    def _count_and_time(
        self, children: tuple[CounterSeries, HistogramSeries], seconds: float
    ) -> None:
        # One acquire for both, so a scrape never sees a request counted but not timed.
        lock = self._hot_lock
        lock.acquire()
        try:
            children[0].inc()
            children[1].observe(seconds)
        finally:
            lock.release()

    def observe_batch(self, rows: int, requests: int) -> None:
        lock = self._hot_lock
        lock.acquire()
        try:
            self._batch_rows.observe_int(rows)
            self._batch_requests.observe_int(requests)
        finally:
            lock.release()

    def observe_queue_delay(self, seconds: float) -> None:
        lock = self._hot_lock
        lock.acquire()
        try:
            self._queue_delay.observe(seconds)
        finally:
            lock.release()

    def set_served(self, name: str, version: int) -> None:
        """Point the model-info gauge at the newly served version."""
        with self._lock:
            if self._served is not None:
                self.model_info.remove(*self._served)
            self._served = (name, str(version))
            self.model_info.labels(*self._served).set(1)
            self.model_version.set(version)

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format (what the HTTP endpoint serves)."""
        return generate_latest(self.registry)

    def start_http(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0 = pick a free port); returns the bound port.

        Raises OSError naming the address and the setting to change when it cannot bind.
        """
        try:
            self._http, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as err:
            raise OSError(_bind_error(host, port, err)) from err
        return int(self._http.server_port)

    def stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def _bind_error(host: str, port: int, err: OSError) -> str:
    """E.g. "cannot serve metrics on 127.0.0.1:9100: Address already in use (set ...)"."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (
        f"cannot serve metrics on {address}: {err.strerror or err} (choose another port with "
        "--metrics-port or DIGITS_METRICS_PORT, make run METRICS_PORT=...; -1 turns metrics off)"
    )
