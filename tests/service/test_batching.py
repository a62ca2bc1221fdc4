"""DynamicBatcher: coalesces what is queued, never mixes models, splits answers back exactly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.batching import DynamicBatcher
from service.errors import DeadlineExceeded, ModelNotReady


class Recorder:
    """A forward pass (row sums + a tag) logging its batch sizes; `gate` holds it so work queues."""

    def __init__(self, tag: float = 0.0) -> None:
        self.tag = tag
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(5)
        self.calls.append(len(x))
        return np.stack([x.sum(axis=1, dtype=np.float32), np.full(len(x), self.tag, np.float32)], 1)


def _rows(n: int, start: int) -> np.ndarray:
    return np.arange(start, start + n * 3, dtype=np.float32).reshape(n, 3)


@pytest.fixture
def make_batcher() -> Callable[..., DynamicBatcher]:
    made: list[DynamicBatcher] = []

    def make(**kwargs: object) -> DynamicBatcher:
        batcher = DynamicBatcher(**kwargs)  # type: ignore[arg-type]
        batcher.start()
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close()


def _submit_while_held(
    batcher: DynamicBatcher, forward: Recorder, inputs: list[tuple[Recorder, np.ndarray]]
) -> list[np.ndarray]:
    """Hold the worker inside one pass, queue `inputs` from threads, then release it."""
    forward.gate.clear()
    with ThreadPoolExecutor(len(inputs) + 1) as pool:
        first = pool.submit(batcher.run, forward, _rows(1, 1000))
        assert forward.entered.wait(5)
        futures = [pool.submit(batcher.run, fwd, x) for fwd, x in inputs]
        deadline = time.monotonic() + 5
        while len(batcher._pending) < len(inputs) and time.monotonic() < deadline:
            time.sleep(0.001)
        for fwd in {fwd for fwd, _ in inputs} | {forward}:
            fwd.gate.set()
        first.result(5)
        return [f.result(5) for f in futures]


def test_queued_requests_share_one_forward_pass(
    make_batcher: Callable[..., DynamicBatcher],
) -> None:
    forward = Recorder()
    batcher = make_batcher(max_batch_rows=64)
    inputs = [(forward, _rows(n, 100 * n)) for n in (1, 2, 3, 4)]
    results = _submit_while_held(batcher, forward, inputs)
    assert forward.calls == [1, 10]  # the held lone request, then all four queued ones at once
    for (_, x), result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result[:, 0], x.sum(axis=1))


def test_max_batch_rows_caps_a_pass(make_batcher: Callable[..., DynamicBatcher]) -> None:
    forward = Recorder()
    batcher = make_batcher(max_batch_rows=4)
    inputs = [(forward, _rows(2, 10 * i)) for i in range(5)]
    results = _submit_while_held(batcher, forward, inputs)
    assert forward.calls[0] == 1 and max(forward.calls[1:]) <= 4 and sum(forward.calls) == 11
    for (_, x), result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result[:, 0], x.sum(axis=1))


def test_different_models_get_separate_passes(make_batcher: Callable[..., DynamicBatcher]) -> None:
    old, new = Recorder(tag=1.0), Recorder(tag=2.0)
    batcher = make_batcher()
    inputs = [(old, _rows(1, 0)), (new, _rows(2, 5)), (old, _rows(1, 9))]
    results = _submit_while_held(batcher, old, inputs)
    assert [r[0, 1] for r in results] == [1.0, 2.0, 1.0]
    assert new.calls == [2] and old.calls == [1, 2]


def test_lone_request_does_not_wait_by_default(make_batcher: Callable[..., DynamicBatcher]) -> None:
    forward = Recorder()
    batcher = make_batcher(max_delay_us=0)
    start = time.perf_counter()
    batcher.run(forward, _rows(1, 0))
    assert time.perf_counter() - start < 0.5  # generous: proves no fixed wait, not a speed target
    assert forward.calls == [1]


def test_max_delay_collects_company(make_batcher: Callable[..., DynamicBatcher]) -> None:
    forward = Recorder()
    batcher = make_batcher(max_delay_us=300_000)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.run, forward, _rows(1, 0))
        time.sleep(0.05)
        second = pool.submit(batcher.run, forward, _rows(2, 3))
        first.result(5), second.result(5)
    assert forward.calls == [3]


def test_errors_reach_every_caller_and_worker_survives(
    make_batcher: Callable[..., DynamicBatcher],
) -> None:
    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    batcher = make_batcher()
    with pytest.raises(RuntimeError, match="boom"):
        batcher.run(broken, _rows(1, 0))
    assert batcher.run(Recorder(), _rows(1, 0)).shape == (1, 2)


def test_timeout_cancels_a_queued_request(make_batcher: Callable[..., DynamicBatcher]) -> None:
    forward = Recorder()
    batcher = make_batcher()
    forward.gate.clear()
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(batcher.run, forward, _rows(1, 0))
        assert forward.entered.wait(5)
        with pytest.raises(DeadlineExceeded):
            batcher.run(forward, _rows(5, 0), timeout=0.05)
        forward.gate.set()
        held.result(5)
    batcher.run(forward, _rows(1, 0))
    assert 5 not in forward.calls  # the timed-out request never ran


def test_disabled_runs_inline_and_closed_refuses(
    make_batcher: Callable[..., DynamicBatcher],
) -> None:
    forward = Recorder()
    seen: list[tuple[int, int]] = []
    batcher = make_batcher(enabled=False, observe_batch=lambda r, n: seen.append((r, n)))
    assert batcher.run(forward, _rows(3, 0)).shape == (3, 2) and seen == [(3, 1)]
    on = make_batcher()
    on.close()
    with pytest.raises(ModelNotReady, match="shutting down"):
        on.run(forward, _rows(1, 0))


def test_idle_batcher_runs_in_the_callers_thread(
    make_batcher: Callable[..., DynamicBatcher],
) -> None:
    threads: list[int] = []

    def forward(x: np.ndarray) -> np.ndarray:
        threads.append(threading.get_ident())
        return x.astype(np.float32)

    make_batcher().run(forward, _rows(1, 0))
    assert threads == [threading.get_ident()]  # no hand-off to another thread when idle


def test_many_concurrent_callers_each_get_their_own_rows(
    make_batcher: Callable[..., DynamicBatcher],
) -> None:
    batcher = make_batcher(max_batch_rows=32)
    weights = np.random.default_rng(0).random((3, 4)).astype(np.float32)

    def forward(x: np.ndarray) -> np.ndarray:
        return x @ weights

    def caller(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        for _ in range(40):
            x = rng.random((int(rng.integers(1, 9)), 3)).astype(np.float32)
            if not np.allclose(batcher.run(forward, x, timeout=10), x @ weights, rtol=1e-6):
                return False
        return True

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(caller, range(16)))
