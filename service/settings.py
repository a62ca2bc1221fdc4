"""ServiceSettings: every runtime setting of the model server, read from DIGITS_* env vars."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry import DEFAULT_ALIAS, DEFAULT_MODEL_NAME, DEFAULT_ROOT
from registry.storage import as_location

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Server settings; the environment (DIGITS_PORT=...) fills what the caller does not pass."""

    model_config = SettingsConfigDict(
        env_prefix="DIGITS_", extra="forbid", frozen=True, use_attribute_docstrings=True
    )

    host: str = "127.0.0.1"
    """Address the gRPC server binds (0.0.0.0 / [::] for all interfaces)."""
    port: int = Field(default=50051, ge=0, le=65535)
    """gRPC port; 0 picks a free port (create_server returns it)."""
    http_port: int = Field(default=0, ge=0, le=65535)
    """Port of the HTTP/REST edge (the Open Inference Protocol's REST binding and the drawing
    page at /), on the same event loop and serving core as gRPC; 0 = no HTTP edge."""
    http_host: str | None = None
    """Address the HTTP edge binds; default: same as host (the same plaintext rule applies)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the HTTP edge from browser pages elsewhere (CORS): a comma list
    on the command line, a JSON list in DIGITS_CORS_ORIGINS; empty = CORS off (same origin)."""
    metrics_host: str | None = None
    """Address of the Prometheus endpoint; default: same as host."""
    metrics_port: int = Field(default=9100, ge=-1, le=65535)
    """Prometheus /metrics port; 0 picks a free port, -1 disables the endpoint."""
    registry: Path | str = Path(DEFAULT_ROOT)
    """Model registry: a directory or s3://bucket/prefix (DIGITS_REGISTRY, shared with the
    registry CLI). Object storage takes its endpoint and credentials from the standard AWS
    variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)."""
    cache_dir: Path = Field(default_factory=lambda: _user_cache_dir() / "registry")
    """Local cache of verified files of an s3:// registry, keyed by sha256, so a restart does
    not download them again (default: $XDG_CACHE_HOME or ~/.cache, then digits/registry)."""
    model_name: str = DEFAULT_MODEL_NAME
    """Registry model name to serve."""
    alias: str = DEFAULT_ALIAS
    """Alias served by default; "production" falls back to the latest version when unset."""
    poll_interval_s: float = Field(default=2.0, ge=0)
    """Seconds between registry polls for hot reload; 0 disables reloading."""
    cache_size: int = Field(default=4, ge=1)
    """Model versions kept in memory for requests that pin a version."""
    batching: bool = False
    """Dynamic batching of concurrent requests into one forward pass. Off by default: on the
    grpc.aio server it was slower at batch 1 in every measured point (docs/service.md)."""
    max_batch: int = Field(default=1024, ge=1)
    """Most rows the batcher coalesces into one forward pass."""
    max_delay_us: int = Field(default=0, ge=0)
    """How long a batch may wait for more requests; 0 = only what is already queued."""
    max_images: int = Field(default=8192, ge=1)
    """Most images in one request (INVALID_ARGUMENT beyond)."""
    max_message_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest request or response message (RESOURCE_EXHAUSTED beyond)."""
    max_streams: int = Field(default=60, ge=1)
    """Most PredictStream calls open at once (RESOURCE_EXHAUSTED beyond). A stream holds no
    thread on grpc.aio; the cap bounds long-lived clients (dead ones are freed by keepalive)."""
    blas_threads: int = Field(default=1, ge=0)
    """BLAS threads for the forward pass (0 = leave BLAS alone); 1 avoids oversubscribing the
    cores the gRPC threads need. Applied with threadpoolctl when installed."""
    grace_s: float = Field(default=10.0, ge=0)
    """On SIGTERM/SIGINT: seconds in-flight requests get to finish."""
    drain_delay_s: float = Field(default=5.0, ge=0)
    """On SIGTERM: seconds health reports NOT_SERVING while requests are still accepted, so load
    balancers (Kubernetes endpoints, after failed readiness probes) stop routing here before the
    port closes; 0 = close at once. SIGINT (Ctrl-C at a terminal) skips it."""
    keepalive_time_s: float = Field(default=60.0, gt=0)
    """Seconds of silence on a connection after which the server sends an HTTP/2 PING (gRPC's
    keepalive, grpc.keepalive_time_ms). A peer that does not answer within keepalive_timeout_s
    (frozen VM, network partition) is dropped and its calls and stream slots are freed: a dead
    peer holds a slot at most keepalive_time_s + keepalive_timeout_s."""
    keepalive_timeout_s: float = Field(default=20.0, gt=0)
    """Seconds the server waits for a keepalive PING's acknowledgement before it closes the
    connection (grpc.keepalive_timeout_ms)."""
    keepalive_permit_without_calls: bool = True
    """Accept client keepalive PINGs (and send the server's) on connections with no call in
    flight (grpc.keepalive_permit_without_calls): clients keeping an idle channel warm."""
    min_ping_interval_s: float = Field(default=5.0, ge=0)
    """Shortest interval between a client's PINGs without data that the server tolerates
    (grpc.http2.min_ping_interval_without_data_ms). gRPC's own default, 5 minutes, answers a
    client pinging every 10 s (common behind load balancers) with GOAWAY too_many_pings."""
    max_ping_strikes: int = Field(default=2, ge=0)
    """PINGs sooner than min_ping_interval_s tolerated before GOAWAY too_many_pings
    (grpc.http2.max_ping_strikes; 0 = unlimited)."""
    max_connection_idle_s: float = Field(default=900.0, ge=0)
    """Close (GOAWAY, graceful) a connection with no call for this long; 0 = never
    (grpc.max_connection_idle_ms). Frees idle clients' resources; they reconnect on demand."""
    max_connection_age_s: float = Field(default=1800.0, ge=0)
    """Close (GOAWAY, graceful) every connection after this long (+-10% jitter, by gRPC); 0 =
    never (grpc.max_connection_age_ms). Clients reconnect and so spread over new replicas."""
    max_connection_age_grace_s: float = Field(default=300.0, ge=0)
    """After max_connection_age_s, seconds calls still open on the old connection (long
    PredictStreams) get before it is closed; 0 = no limit (grpc.max_connection_age_grace_ms)."""
    tls_cert: Path | None = None
    """PEM server certificate chain; enables TLS together with tls_key."""
    tls_key: Path | None = None
    """PEM private key of tls_cert."""
    tls_client_ca: Path | None = None
    """PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."""
    plaintext: bool = False
    """Allow plaintext on a non-loopback host (loopback is always allowed without TLS)."""
    reflection: bool = True
    """gRPC server reflection (grpcurl, grpcui)."""
    enable_v2: bool = True
    """Also serve the Open Inference Protocol (KServe V2) when service.rpc.v2 is present."""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """Event loop under the grpc.aio server: uvloop (measured ~7% more requests/s at batch 1 x 32)
    when installed, else asyncio's own (a warning says so)."""
    drift: bool = True
    """Profile live traffic per model version and export drift scores (PSI against the
    manifest's training profile), predicted-class counts and a confidence histogram."""
    drift_window: int = Field(default=5000, ge=1)
    """Images in each version's sliding drift window."""
    drift_min_images: int = Field(default=500, ge=1)
    """Images a window needs before its PSI is exported: at 200 clean MNIST images the class
    PSI still touched 0.2 from sampling noise alone (docs/drift_psi.png)."""
    drift_fold_interval_s: float = Field(default=1.0, ge=0)
    """Seconds between folds of queued answers into the drift windows (0 = at scrape only)."""
    monitor_priority: Literal["idle", "low", "normal"] = "idle"
    """CPU priority of the monitor process (drift profiling, prediction log): idle runs it only
    on CPU time serving leaves over (Linux SCHED_IDLE), so it never slows requests, but on
    cores saturated for longer than its buffers last (~7 s at 5,000 requests/s) records are
    dropped and counted; low (nice 10) and normal (nice 0) take CPU from serving instead."""
    feedback_window: int = Field(default=100_000, ge=0)
    """Recent request ids remembered for Feedback (0 = feedback off, NOT_FOUND for all)."""
    prediction_log: Path | str | None = None
    """Prediction log (gzip JSON Lines): a directory, or s3://bucket/prefix (files spooled under
    cache_dir and uploaded when closed); None = no log."""
    log_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Fraction of Predict requests (successful or failed) written to the prediction log."""
    log_queue_size: int = Field(default=10_000, ge=1)
    """Records waiting for the log writer; beyond, records are dropped and counted."""
    log_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Rotate a log file when its compressed size reaches this."""
    log_max_age_s: float = Field(default=3600.0, gt=0)
    """Rotate a log file when it is this old."""
    log_flush_interval_s: float = Field(default=0.25, gt=0)
    """Seconds between the log writer's drains of its queue."""
    log_format: Literal["json", "text"] = "json"
    """Log line format on stderr."""
    log_level: str = "INFO"
    """Python logging level name."""

    @field_validator("registry", "prediction_log", mode="before")
    @classmethod
    def _registry_location(cls, value: Any) -> Any:
        return as_location(value)

    @model_validator(mode="after")
    def _check_transport_security(self) -> ServiceSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key (DIGITS_TLS_CERT, _KEY) go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key as well")
        edges = [("gRPC", self.host)]
        if self.http_port:
            edges.append(("HTTP", self.http_host or self.host))
        for edge, host in edges:
            if self.tls_cert is None and not self.plaintext and not _is_loopback(host):
                raise ValueError(
                    f"refusing plaintext {edge} on non-loopback host {host!r}: "
                    "give a certificate (--tls-cert and --tls-key, or DIGITS_TLS_CERT and "
                    "DIGITS_TLS_KEY) or allow plaintext (--plaintext, or DIGITS_PLAINTEXT=true)"
                )
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def _user_cache_dir() -> Path:
    """The XDG user cache directory (what platformdirs answers on Linux), then digits/."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digits"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
