"""`python -m service`: run the model server with settings from DIGITS_* environment variables.

An expected failure (a bad variable, a port in use, an unreadable certificate) is one line on
stderr naming the variable, exit 1 (2 for a bad value); `digits --debug serve` shows tracebacks.
"""

from __future__ import annotations

import sys


def main() -> int:
    from pydantic import ValidationError

    from service.settings import ServiceSettings

    try:
        settings = ServiceSettings()
    except ValidationError as err:
        problems = "; ".join(
            f"DIGITS_{str(e['loc'][0]).upper() if e['loc'] else 'SETTINGS'}: {e['msg']} "
            f"(got {e.get('input')!r})"
            for e in err.errors()
        )
        print(f"python -m service: error: {problems}", file=sys.stderr)
        return 2
    from service.preflight import check_ports
    from service.rpc.server import serve

    try:
        check_ports(settings)  # before gRPC binds: one line, not gRPC core's log beside it
        return serve(settings)
    except (OSError, ValueError) as err:
        print(f"python -m service: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
