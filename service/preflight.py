"""Preflight for the server: are its ports free? Used before an expensive step (`make run`
checks them before training), so a taken port fails in a second, not after minutes."""

from __future__ import annotations

import socket

from service.settings import ServiceSettings

__all__ = ["check_ports"]


def check_ports(settings: ServiceSettings) -> None:
    """Raise OSError unless the gRPC port and the metrics port (when on) can be bound now.

    The message names the address and the flag / variable that sets it, as the server's own
    bind errors do. Port 0 (any free port) always passes; the check binds and closes at once.
    """
    _check(settings.host, settings.port, "--port or DIGITS_PORT, make run PORT=...")
    if settings.metrics_port > 0:
        host = settings.metrics_host or settings.host
        flags = "--metrics-port or DIGITS_METRICS_PORT, make run METRICS_PORT=...; -1: off"
        _check(host, settings.metrics_port, flags)


def _check(host: str, port: int, flags: str) -> None:
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the servers bind: a port in TIME_WAIT is free, one with a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            reason = err.strerror or str(err)
            raise OSError(f"cannot listen on {address}: {reason} (set {flags})") from err
