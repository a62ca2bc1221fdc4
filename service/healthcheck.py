"""`python -m service.healthcheck`: exit 0 only when the server's grpc.health.v1 says SERVING.

Used as the Docker HEALTHCHECK (no extra binary), same contract as grpc-health-probe:
    python -m service.healthcheck [--target HOST:PORT] [--service NAME] [--timeout 2]
Exit codes: 0 SERVING, 1 anything else (NOT_SERVING, unknown service, unreachable, timeout).
TLS: --tls-ca PEM (plus --tls-cert/--tls-key for mutual TLS); the target defaults to
127.0.0.1:$DIGITS_PORT (50051).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m service.healthcheck` (also checked against the docs)."""
    parser = argparse.ArgumentParser(prog="python -m service.healthcheck", description=__doc__)
    port = os.environ.get("DIGITS_PORT", "50051")
    parser.add_argument("--target", default=f"127.0.0.1:{port}", help="HOST:PORT (%(default)s)")
    parser.add_argument("--service", default="", help='service name ("" = the whole server)')
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (%(default)s)")
    parser.add_argument("--tls-ca", type=Path, help="PEM CA of the server certificate")
    parser.add_argument("--tls-cert", type=Path, help="client certificate (mutual TLS)")
    parser.add_argument("--tls-key", type=Path, help="client key (mutual TLS)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if args.tls_ca or args.tls_cert:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=args.tls_ca.read_bytes() if args.tls_ca else None,
            private_key=args.tls_key.read_bytes() if args.tls_key else None,
            certificate_chain=args.tls_cert.read_bytes() if args.tls_cert else None,
        )
        channel = grpc.secure_channel(args.target, credentials)
    else:
        channel = grpc.insecure_channel(args.target)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=args.service)
        try:
            reply = stub.Check(request, timeout=args.timeout)  # type: ignore[attr-defined]  # the stubs give HealthStub no methods
        except grpc.RpcError as err:
            print(f"healthcheck {args.target}: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"healthcheck {args.target} {args.service or '(server)'}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
