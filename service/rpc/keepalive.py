"""HTTP/2 connection management of the gRPC server: keepalive, ping policy, connection age.

The settings (service/settings.py) become gRPC core channel arguments; their meaning is gRPC's:
https://github.com/grpc/grpc/blob/master/doc/keepalive.md and, for the names,
include/grpc/impl/channel_arg_names.h in the same repository.
"""

from __future__ import annotations

from service.settings import ServiceSettings

__all__ = ["connection_options"]


def connection_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    """The server's keepalive / ping-policy / connection-age channel arguments (ms, 0/1)."""

    def ms(seconds: float) -> int:
        return max(round(seconds * 1000), 1)

    options = [
        ("grpc.keepalive_time_ms", ms(settings.keepalive_time_s)),
        ("grpc.keepalive_timeout_ms", ms(settings.keepalive_timeout_s)),
        # Recent gRPC cores time every PING (keepalive ones too) with this one: 1 minute by
        # default, whatever keepalive_timeout_ms says (measured: a frozen peer held on for it).
        ("grpc.http2.ping_timeout_ms", ms(settings.keepalive_timeout_s)),
        ("grpc.keepalive_permit_without_calls", int(settings.keepalive_permit_without_calls)),
        ("grpc.http2.min_ping_interval_without_data_ms", round(settings.min_ping_interval_s * 1e3)),
        ("grpc.http2.max_ping_strikes", settings.max_ping_strikes),
        # The server's own keepalive PINGs must not stop after two on a connection that sends
        # no data (gRPC's default limit): an idle PredictStream whose client freezes an hour
        # later must still be found dead.
        ("grpc.http2.max_pings_without_data", 0),
    ]
    for name, seconds in (
        ("grpc.max_connection_idle_ms", settings.max_connection_idle_s),
        ("grpc.max_connection_age_ms", settings.max_connection_age_s),
        ("grpc.max_connection_age_grace_ms", settings.max_connection_age_grace_s),
    ):
        if seconds > 0:  # absent = gRPC's infinite
            options.append((name, ms(seconds)))
    return options
