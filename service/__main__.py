"""`python -m service`: run the model server with settings from DIGITS_* environment variables."""

from __future__ import annotations

import sys

from service.rpc.server import serve
from service.settings import ServiceSettings


def main() -> int:
    return serve(ServiceSettings())


if __name__ == "__main__":
    sys.exit(main())
