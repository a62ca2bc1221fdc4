"""Long-lived connections like a production gRPC server: a client that pings often keeps its
idle stream; a frozen client (socket open, no PING answers) loses its stream slots in bounded
time. The settings are scaled down (10 s -> 1 s) so the tests take seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from registry import Registry
from service.generated.digits.v1 import digits_pb2 as pb
from service.generated.digits.v1 import digits_pb2_grpc as pb_grpc
from tests.helpers.servers import Running

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

ONE = pb.PredictRequest(images=pb.Tensor(data=bytes(784), dtype=pb.DTYPE_UINT8, shape=[1, 784]))
# A client pinging every 10 s behind a load balancer, scaled 1/10: every 1 s (also the
# shortest interval a gRPC core client sends PINGs at).
PINGING_CLIENT = [
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def _idle_stream(running: Running, idle_s: float) -> list[int]:
    """One PredictStream: a message, `idle_s` of silence (client PINGs only), a message."""
    resume = threading.Event()

    def requests() -> Iterator[pb.PredictRequest]:
        yield ONE
        resume.wait(30)
        yield ONE

    with grpc.insecure_channel(running.target, options=PINGING_CLIENT) as channel:
        answers = pb_grpc.DigitClassifierStub(channel).PredictStream(requests(), timeout=30)
        versions = [next(answers).version]
        time.sleep(idle_s)
        resume.set()
        versions.append(next(answers).version)
        return versions


def test_a_client_pinging_often_keeps_its_idle_stream(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    # The production policy scaled 1/10: PINGs 0.5 s apart (5 s) are fine, so 1 s (10 s) too.
    running = start_server(registry, min_ping_interval_s=0.5, max_ping_strikes=2)
    assert _idle_stream(running, idle_s=6.0) == [1, 1]


def test_the_ping_policy_is_what_the_setting_says(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    # The same client against a server tolerating PINGs 5 s apart (gRPC's default: 300 s):
    # the third early PING is a strike too many, GOAWAY too_many_pings ends the stream.
    running = start_server(registry, min_ping_interval_s=5.0, max_ping_strikes=2)
    with pytest.raises(grpc.RpcError) as err:
        _idle_stream(running, idle_s=6.0)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


# Opens `streams` PredictStreams, one answered message each, then holds them open silently.
_HOLDER = textwrap.dedent(
    """
    import sys, threading
    import grpc
    from service.generated.digits.v1 import digits_pb2 as pb
    from service.generated.digits.v1 import digits_pb2_grpc as pb_grpc

    target, streams = sys.argv[1], int(sys.argv[2])
    one = pb.PredictRequest(images=pb.Tensor(data=bytes(784), dtype=pb.DTYPE_UINT8,
                                             shape=[1, 784]))
    forever = threading.Event()

    def requests():
        yield one
        forever.wait()

    channel = grpc.insecure_channel(target)
    stub = pb_grpc.DigitClassifierStub(channel)
    calls = [stub.PredictStream(requests()) for _ in range(streams)]
    for call in calls:
        next(call)
    print("holding", flush=True)
    forever.wait()
    """
)


def _new_stream_ok(running: Running) -> bool:
    """Can a new PredictStream be opened and answered now?"""
    try:
        answers = running.stub.PredictStream(iter([ONE]), timeout=5)
        return [answer.version for answer in answers] == [1]
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
        return False


def test_frozen_clients_lose_their_stream_slots_in_bounded_time(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    # Scaled: PING after 0.5 s of silence, 0.5 s to answer (production: 60 s and 20 s).
    running = start_server(registry, max_streams=2, keepalive_time_s=0.5, keepalive_timeout_s=0.5)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, running.target, "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        # Alive and answering PINGs, the holder keeps both slots: well past several PINGs
        # (also past gRPC's default cap of two PINGs on a connection without data).
        time.sleep(2.5)
        assert not _new_stream_ok(running)
        os.kill(holder.pid, signal.SIGSTOP)  # frozen: the kernel keeps its socket open
        deadline = time.monotonic() + 10
        while not _new_stream_ok(running):
            assert time.monotonic() < deadline, "a frozen client still holds the stream slots"
            time.sleep(0.2)
    finally:
        holder.kill()  # SIGKILL ends a stopped process too
        holder.wait()
