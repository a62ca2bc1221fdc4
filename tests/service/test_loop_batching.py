"""LoopBatcher: coalesces what is queued on the loop, never mixes models, splits answers exactly."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from service.serving.batching import LoopBatcher
from service.serving.errors import DeadlineExceeded, ModelNotReady


class Recorder:
    """A forward pass (row sums + a tag) logging its batch sizes and threads."""

    def __init__(self, tag: float = 0.0) -> None:
        self.tag = tag
        self.calls: list[int] = []
        self.threads: list[int] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        self.threads.append(threading.get_ident())
        return np.stack([x.sum(axis=1, dtype=np.float32), np.full(len(x), self.tag, np.float32)], 1)


def _rows(n: int, start: int) -> np.ndarray:
    return np.arange(start, start + n * 3, dtype=np.float32).reshape(n, 3)


def _run(batcher: LoopBatcher, *calls: tuple[Recorder, np.ndarray]) -> list[np.ndarray]:
    """Submit every call in the same loop iteration (as concurrent handlers would)."""

    async def main() -> list[np.ndarray]:
        return list(await asyncio.gather(*(batcher.run(fwd, x) for fwd, x in calls)))

    try:
        return asyncio.run(main())
    finally:
        batcher.close()


def test_queued_requests_share_one_forward_pass() -> None:
    forward = Recorder()
    inputs = [(forward, _rows(n, 100 * n)) for n in (1, 2, 3, 4)]
    results = _run(LoopBatcher(max_batch_rows=64), *inputs)
    assert forward.calls == [10]
    for (_, x), result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result[:, 0], x.sum(axis=1))


def test_max_batch_rows_caps_a_pass() -> None:
    forward = Recorder()
    inputs = [(forward, _rows(2, 10 * i)) for i in range(5)]
    results = _run(LoopBatcher(max_batch_rows=4), *inputs)
    assert max(forward.calls) <= 4 and sum(forward.calls) == 10 and len(forward.calls) == 3
    for (_, x), result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result[:, 0], x.sum(axis=1))


def test_different_models_get_separate_passes() -> None:
    old, new = Recorder(tag=1.0), Recorder(tag=2.0)
    inputs = [(old, _rows(1, 0)), (new, _rows(2, 5)), (old, _rows(1, 9))]
    results = _run(LoopBatcher(), *inputs)
    assert [r[0, 1] for r in results] == [1.0, 2.0, 1.0]
    assert new.calls == [2] and old.calls == [2]


def test_lone_small_request_runs_inline_without_waiting() -> None:
    forward = Recorder()
    start = time.perf_counter()
    _run(LoopBatcher(max_delay_us=0), (forward, _rows(1, 0)))
    assert time.perf_counter() - start < 0.5  # generous: proves no fixed wait, not a speed target
    assert forward.calls == [1] and forward.threads == [threading.get_ident()]  # on the loop


def test_big_batches_run_off_the_loop() -> None:
    forward = Recorder()
    _run(LoopBatcher(inline_rows=64), (forward, _rows(65, 0)), (forward, _rows(3, 0)))
    assert forward.calls == [68] and forward.threads[0] != threading.get_ident()


def test_max_delay_collects_company() -> None:
    forward = Recorder()
    batcher = LoopBatcher(max_delay_us=300_000)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.run(forward, _rows(1, 0)))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, batcher.run(forward, _rows(2, 3)))

    asyncio.run(main())
    batcher.close()
    assert forward.calls == [3]


def test_errors_reach_every_caller_and_batcher_survives() -> None:
    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    batcher = LoopBatcher()

    async def main() -> None:
        results = await asyncio.gather(
            batcher.run(broken, _rows(1, 0)), batcher.run(broken, _rows(1, 0)),
            return_exceptions=True,
        )  # fmt: skip
        assert all(isinstance(r, RuntimeError) for r in results)
        assert (await batcher.run(Recorder(), _rows(1, 0))).shape == (1, 2)

    asyncio.run(main())
    batcher.close()


def test_timeout_drops_a_queued_request() -> None:
    forward = Recorder()
    batcher = LoopBatcher(max_delay_us=300_000)

    async def main() -> None:
        with pytest.raises(DeadlineExceeded):
            await batcher.run(forward, _rows(5, 0), timeout=0.05)
        await batcher.run(forward, _rows(1, 0))

    asyncio.run(main())
    batcher.close()
    assert 5 not in forward.calls  # the timed-out request never ran


def test_disabled_runs_inline_and_closed_refuses() -> None:
    forward = Recorder()
    seen: list[tuple[int, int]] = []
    off = LoopBatcher(enabled=False, observe_batch=lambda r, n: seen.append((r, n)))
    assert _run(off, (forward, _rows(3, 0)))[0].shape == (3, 2) and seen == [(3, 1)]
    on = LoopBatcher()
    on.close()
    with pytest.raises(ModelNotReady, match="shutting down"):
        asyncio.run(on.run(forward, _rows(1, 0)))


def test_many_concurrent_callers_each_get_their_own_rows() -> None:
    batcher = LoopBatcher(max_batch_rows=32, inline_rows=8)
    weights = np.random.default_rng(0).random((3, 4)).astype(np.float32)

    def forward(x: np.ndarray) -> np.ndarray:
        return x @ weights

    async def caller(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        for _ in range(40):
            x = rng.random((int(rng.integers(1, 9)), 3)).astype(np.float32)
            if not np.allclose(await batcher.run(forward, x, timeout=10), x @ weights, rtol=1e-6):
                return False
        return True

    async def main() -> list[bool]:
        return list(await asyncio.gather(*(caller(seed) for seed in range(16))))

    assert all(asyncio.run(main()))
    batcher.close()
