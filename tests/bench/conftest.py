"""The service tests' real-server fixtures, reused for the benchmark tools."""

from tests.service.conftest import registry, start_server

__all__ = ["registry", "start_server"]
