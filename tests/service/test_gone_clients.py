"""A client that leaves, whatever way, ends its request in exactly one counted, logged outcome,
and a request nobody waits for any more costs no forward pass (batching on or off)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from registry import Registry
from service.generated.digits.v1 import digits_pb2 as pb
from service.generated.digits.v1 import digits_pb2_grpc as pb_grpc
from tests.helpers.servers import Running

pytestmark = pytest.mark.integration

ONE = pb.PredictRequest(images=pb.Tensor(data=bytes(784), dtype=pb.DTYPE_UINT8, shape=[1, 784]))
MANY = pb.PredictRequest(
    images=pb.Tensor(data=bytes(64 * 784), dtype=pb.DTYPE_UINT8, shape=[64, 784])
)
Leave = Callable[[Running, pb_grpc.DigitClassifierStub, grpc.Channel], None]


def _counts(running: Running) -> dict[str, float]:
    """digits_requests_total by "method/code", and the forward passes run ("passes")."""
    text = running.server.core.metrics.exposition().decode()
    counts = {
        f"{m[2]}/{m[1]}": float(m[3])
        for m in re.finditer(r'digits_requests_total\{code="(\w+)",method="(\w+)"\} (\S+)', text)
    }
    passes = re.search(r"^digits_batch_rows_count (\S+)$", text, re.MULTILINE)
    counts["passes"] = float(passes.group(1)) if passes else 0.0
    return counts


def _block_loop(running: Running, seconds: float) -> None:
    """Keep the server's event loop busy (like a long forward pass) for `seconds`."""

    async def busy() -> None:
        time.sleep(seconds)

    running.server.loop.submit(busy())
    time.sleep(0.05)  # the loop is now inside busy()


def _endless(request: pb.PredictRequest, stop: threading.Event) -> Iterator[pb.PredictRequest]:
    while not stop.is_set():
        yield request


def close_channel_mid_answer(running: Running, stub: pb_grpc.DigitClassifierStub,
                             channel: grpc.Channel) -> None:  # fmt: skip
    stop = threading.Event()
    answers = stub.PredictStream(_endless(ONE, stop))
    next(answers)
    channel.close()
    stop.set()


def cancel_while_server_waits_to_write(running: Running, stub: pb_grpc.DigitClassifierStub,
                                       channel: grpc.Channel) -> None:  # fmt: skip
    stop = threading.Event()
    answers = stub.PredictStream(_endless(MANY, stop))  # never read: flow control stops writes
    time.sleep(0.5)
    answers.cancel()
    stop.set()


def cancel_idle_stream(running: Running, stub: pb_grpc.DigitClassifierStub,
                       channel: grpc.Channel) -> None:  # fmt: skip
    stop = threading.Event()

    def one_then_wait() -> Iterator[pb.PredictRequest]:
        yield ONE
        stop.wait(5)

    answers = stub.PredictStream(one_then_wait())
    next(answers)
    answers.cancel()
    stop.set()


def deadline_of_idle_stream(running: Running, stub: pb_grpc.DigitClassifierStub,
                            channel: grpc.Channel) -> None:  # fmt: skip
    stop = threading.Event()

    def one_then_wait() -> Iterator[pb.PredictRequest]:
        yield ONE
        stop.wait(5)

    answers = stub.PredictStream(one_then_wait(), timeout=0.5)
    next(answers)
    with pytest.raises(grpc.RpcError):
        next(answers)
    stop.set()


def cancel_while_server_busy(running: Running, stub: pb_grpc.DigitClassifierStub,
                             channel: grpc.Channel) -> None:  # fmt: skip
    _block_loop(running, 0.5)
    call = stub.Predict.future(ONE)
    time.sleep(0.1)
    call.cancel()


def deadline_while_server_busy(running: Running, stub: pb_grpc.DigitClassifierStub,
                               channel: grpc.Channel) -> None:  # fmt: skip
    _block_loop(running, 0.5)
    with pytest.raises(grpc.RpcError):
        stub.Predict(ONE, timeout=0.1)


def stream_message_while_server_busy(running: Running, stub: pb_grpc.DigitClassifierStub,
                                     channel: grpc.Channel) -> None:  # fmt: skip
    stop = threading.Event()
    answers = stub.PredictStream(_endless(ONE, stop))
    next(answers)
    _block_loop(running, 0.5)
    answers.cancel()
    stop.set()


# (way of leaving, method, the code it is counted as)
WAYS: dict[str, tuple[Leave, str, str]] = {
    "close channel mid-answer": (close_channel_mid_answer, "PredictStream", "CANCELLED"),
    "cancel while server waits to write": (
        cancel_while_server_waits_to_write, "PredictStream", "CANCELLED"),
    "cancel idle stream": (cancel_idle_stream, "PredictStream", "CANCELLED"),
    "deadline of idle stream": (deadline_of_idle_stream, "PredictStream", "DEADLINE_EXCEEDED"),
    "cancel while server busy": (cancel_while_server_busy, "Predict", "CANCELLED"),
    "deadline while server busy": (deadline_while_server_busy, "Predict", "DEADLINE_EXCEEDED"),
    "cancel stream while server busy": (
        stream_message_while_server_busy, "PredictStream", "CANCELLED"),
}  # fmt: skip


def _settle(running: Running, before: dict[str, float], method: str) -> dict[str, float]:
    """Counter changes once `method` has one more outcome (the server counts asynchronously)."""
    deadline = time.monotonic() + 5
    while True:
        after = _counts(running)
        delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
        if any(k.startswith(f"{method}/") for k in delta) or time.monotonic() > deadline:
            time.sleep(0.3)  # a second (wrong) count would land by now
            after = _counts(running)
            return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
        time.sleep(0.02)


@pytest.mark.parametrize("batching", [False, True], ids=["batching off", "batching on"])
@pytest.mark.parametrize("way", sorted(WAYS))
def test_every_way_of_leaving_is_counted_once(
    registry: Registry,
    start_server: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
    way: str,
    batching: bool,
) -> None:
    caplog.set_level("INFO", logger="service.rpc")
    leave, method, code = WAYS[way]
    running = start_server(registry, batching=batching)
    channel = grpc.insecure_channel(running.target)
    stub = pb_grpc.DigitClassifierStub(channel)
    before = _counts(running)
    leave(running, stub, channel)
    delta = _settle(running, before, method)
    channel.close()
    outcomes = {k: v for k, v in delta.items() if k.startswith(f"{method}/")}
    if way == "cancel idle stream" and outcomes == {f"{method}/OK": 1.0}:
        # A cancel that lands while the server waits for the next message ends that wait as a
        # half-close would, and grpc.aio gives no way to tell them apart (ServicerContext.
        # cancelled() stays False for a client's cancel: grpc/grpc#36193). When the end of the
        # requests reaches the handler before the cancel does, every request was answered and
        # the call is counted once, as OK, and not logged as abandoned.
        assert not [r for r in caplog.records if getattr(r, "code", None) == code], delta
        return
    assert outcomes == {f"{method}/{code}": 1.0}, delta
    logged = [r for r in caplog.records if getattr(r, "code", None) == code]
    assert len(logged) == 1 and logged[0].method == method and logged[0].request_id


@pytest.mark.parametrize("batching", [False, True], ids=["batching off", "batching on"])
@pytest.mark.parametrize("way", ["cancel while server busy", "deadline while server busy"])
def test_no_forward_pass_for_a_request_nobody_waits_for(
    registry: Registry, start_server: Callable[..., Running], way: str, batching: bool
) -> None:
    running = start_server(registry, batching=batching)
    channel = grpc.insecure_channel(running.target)
    before = _counts(running)
    WAYS[way][0](running, pb_grpc.DigitClassifierStub(channel), channel)
    delta = _settle(running, before, "Predict")
    channel.close()
    assert delta.get("passes", 0.0) == 0.0, delta


def test_queued_request_of_a_gone_client_is_never_computed(
    registry: Registry, start_server: Callable[..., Running]
) -> None:
    # A 0.5 s batching delay keeps the request queued while its client cancels.
    running = start_server(registry, batching=True, max_delay_us=500_000)
    before = _counts(running)
    call = running.stub.Predict.future(ONE)
    time.sleep(0.1)
    call.cancel()
    delta = _settle(running, before, "Predict")
    assert delta == {"Predict/CANCELLED": 1.0}, delta  # no "passes": nothing was computed
