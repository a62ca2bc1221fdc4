"""`digits serve`: run the gRPC prediction server; flags override DIGITS_* environment variables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# flag dest -> ServiceSettings field; a flag left out keeps the env var or the default.
_FIELDS = (
    "registry", "host", "port", "metrics_host", "metrics_port", "model_name", "alias",
    "poll_interval_s", "cache_size", "batching", "max_batch", "max_delay_us", "max_images",
    "max_message_bytes", "workers", "max_streams", "blas_threads", "grace_s", "drain_delay_s",
    "tls_cert", "tls_key", "tls_client_ca", "plaintext", "reflection", "enable_v2", "event_loop",
    "log_format", "log_level", "drift", "drift_window", "drift_min_images", "feedback_window",
    "prediction_log", "log_sample_rate", "log_queue_size", "log_max_bytes", "log_max_age_s",
)  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the registry's model over gRPC",
        description="Serve the production model of a registry over gRPC (digits.v1, health, "
        "reflection, Open Inference Protocol), hot-reloading new versions. Each flag has an "
        "environment variable DIGITS_<SETTING> (e.g. DIGITS_PORT, DIGITS_GRACE_S; see "
        "docs/service.md); flags win.",
    )
    add = parser.add_argument
    add("--registry", type=Path, metavar="DIR", help="model registry directory (./models)")
    add("--host", help="address to bind (127.0.0.1; 0.0.0.0 needs TLS or --plaintext)")
    add("--port", type=int, help="gRPC port (50051; 0 = any free port)")
    add("--metrics-host", help="Prometheus endpoint address (default: --host)")
    add("--metrics-port", type=int, help="Prometheus /metrics port (9100; -1 = off)")
    add("--model-name", metavar="NAME", help="registry model to serve (digits)")
    add("--alias", help="alias served by default (production, else latest)")
    add("--poll-interval", dest="poll_interval_s", type=float, metavar="S",
        help="seconds between registry polls for hot reload (2; 0 = off)")  # fmt: skip
    add("--cache-size", type=int, metavar="N", help="pinned versions kept in memory (4)")
    add("--batching", action=argparse.BooleanOptionalAction, help="dynamic batching (off)")
    add("--max-batch", type=int, metavar="ROWS", help="rows per coalesced forward pass (1024)")
    add("--max-delay-us", type=int, metavar="US",
        help="how long a batch may wait for company (0 = never wait)")  # fmt: skip
    add("--max-images", type=int, metavar="N", help="most images per request (8192)")
    add("--max-message-bytes", type=int, metavar="B", help="largest message (32 MiB)")
    add("--workers", type=int, metavar="N", help="threads for sync handlers (64)")
    add("--max-streams", type=int, metavar="N", help="open PredictStream calls (workers - 4)")
    add("--blas-threads", type=int, metavar="N", help="BLAS threads (1; 0 = BLAS default)")
    add("--grace", dest="grace_s", type=float, metavar="S",
        help="seconds in-flight requests get on SIGTERM/SIGINT (10)")  # fmt: skip
    add("--drain-delay", dest="drain_delay_s", type=float, metavar="S",
        help="on SIGTERM: seconds of NOT_SERVING health before the port closes (0)")  # fmt: skip
    add("--tls-cert", type=Path, metavar="PEM", help="server certificate chain (enables TLS)")
    add("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert")
    add("--tls-client-ca", type=Path, metavar="PEM", help="require client certs signed by this CA")
    add("--plaintext", action="store_true", default=None,
        help="allow plaintext on a non-loopback --host")  # fmt: skip
    add("--reflection", action=argparse.BooleanOptionalAction, help="server reflection (on)")
    add("--v2", dest="enable_v2", action=argparse.BooleanOptionalAction,
        help="Open Inference Protocol endpoint on the same port (on)")  # fmt: skip
    add("--event-loop", choices=("uvloop", "asyncio"),
        help="event loop under the server (uvloop when installed)")  # fmt: skip
    monitoring = parser.add_argument_group("monitoring (docs/monitoring.md)")
    watch = monitoring.add_argument
    watch("--drift", action=argparse.BooleanOptionalAction,
          help="drift metrics: live profiles vs the manifest's training profile (on)")  # fmt: skip
    watch("--drift-window", type=int, metavar="N", help="images per drift window (5000)")
    watch("--drift-min-images", type=int, metavar="N",
          help="images a window needs before its PSI is exported (500)")  # fmt: skip
    watch("--feedback-window", type=int, metavar="N",
          help="recent request ids kept for Feedback (100000; 0 = off)")  # fmt: skip
    watch("--prediction-log", type=Path, metavar="DIR",
          help="write sampled requests and answers to DIR as gzip JSON Lines (off)")  # fmt: skip
    watch("--log-sample-rate", type=float, metavar="R",
          help="fraction of requests logged, 0..1 (1.0)")  # fmt: skip
    watch("--log-queue-size", type=int, metavar="N",
          help="records waiting for the writer before new ones are dropped (10000)")  # fmt: skip
    watch("--log-max-bytes", type=int, metavar="B", help="rotate log files at this size (64 MiB)")
    watch("--log-max-age", dest="log_max_age_s", type=float, metavar="S",
          help="rotate log files at this age (3600)")  # fmt: skip
    add("--log-format", choices=("json", "text"), help="log line format (json)")
    add("--log-level", help="log level (INFO)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from service.rpc.server import serve

    return serve(settings_from_args(args))


def settings_from_args(args: argparse.Namespace) -> Any:
    """ServiceSettings from the flags given (env vars and defaults fill the rest)."""
    from pydantic import ValidationError

    from cli.main import CommandError
    from service.settings import ServiceSettings

    overrides = {
        field: getattr(args, field) for field in _FIELDS if getattr(args, field) is not None
    }
    try:
        return ServiceSettings(**overrides)
    except ValidationError as err:
        reasons = "; ".join(_reason(error) for error in err.errors())
        raise CommandError(reasons, exit_code=2) from None


def _reason(error: Any) -> str:
    where = ".".join(map(str, error["loc"])) or "settings"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"
