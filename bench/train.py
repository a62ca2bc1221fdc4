"""Training and inference speed of core.MLP against PyTorch on the same work, as JSON.

    python bench/train.py [--mnist-dir DIR] [--threads 1] [--epochs 5] [--accuracy]

Both frameworks train the same 784-128-40-10 network with Adam(1e-3, 0.9, 0.99, 1e-8) at batch
128 over full 60,000-row epochs with a per-epoch shuffle, on the same number of BLAS threads
(pinned with threadpoolctl and torch.set_num_threads). PyTorch is optional: without it the
reference figures are null. ``--accuracy`` also trains the default configuration to the end and
reports its MNIST test accuracy (and PyTorch's with the design document's settings for 10 epochs).
MNIST comes from --mnist-dir, $MNIST_DIR, or the cache `digits train` downloads into.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import MLP, TrainConfig, evaluate, fit, to_features
from core.idx import decode_images, decode_labels

BATCH = 128


def _mnist_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("MNIST_DIR"):
        return Path(os.environ["MNIST_DIR"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("digits")) / "mnist"


def _load(root: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    images = decode_images((root / f"{stem}-images-idx3-ubyte.gz").read_bytes())
    labels = decode_labels((root / f"{stem}-labels-idx1-ubyte.gz").read_bytes())
    return to_features(images), labels.astype(np.int64)


class _DigitsTrainer:
    """One epoch at a time of core.fit, continuing the same model and Adam state."""

    def __init__(self, x: np.ndarray, y: np.ndarray, **overrides: object) -> None:
        self.x, self.y, self.model, self.optimizer = x, y, MLP(seed=0), None
        self.config = TrainConfig(lr=1e-3, epochs=1, batch_size=BATCH, **overrides)  # type: ignore[arg-type]

    def epoch(self) -> float:
        run = fit(self.model, self.x, self.y, self.config, optimizer=self.optimizer)
        self.optimizer = run.optimizer
        return run.history[0]["seconds"]


class _TorchTrainer:
    """The same network, loss, Adam settings and batch in PyTorch, one epoch at a time."""

    def __init__(self, torch: Any, x: np.ndarray, y: np.ndarray) -> None:
        torch.manual_seed(0)
        nn = torch.nn
        self.torch = torch
        self.model = nn.Sequential(
            nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 40), nn.ReLU(), nn.Linear(40, 10)
        )
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8
        )
        self.loss_fn = nn.CrossEntropyLoss()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(self) -> float:
        start = time.perf_counter()
        order = self.torch.randperm(len(self.x))
        for begin in range(0, len(self.x), BATCH):
            rows = order[begin : begin + BATCH]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(self.x[rows]), self.y[rows])
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - start


def _throughput(predict: object, x: np.ndarray, batch: int, seconds: float = 1.0) -> float:
    rows = x[:batch]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(rows)  # type: ignore[operator]
        done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per framework")
    parser.add_argument("--accuracy", action="store_true", help="also train to the end")
    args = parser.parse_args()

    root = _mnist_dir(args.mnist_dir)
    x, y = _load(root, "train")
    x_test, y_test = _load(root, "t10k")
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None  # type: ignore[assignment]

    result: dict[str, object] = {
        "threads": args.threads,
        "batch": BATCH,
        "machine": platform.processor() or platform.machine(),
    }
    with threadpool_limits(args.threads):
        result["blas"] = [
            {
                key: info[key]
                for key in ("internal_api", "num_threads", "architecture")
                if key in info
            }
            for info in threadpool_info()
        ]
        # Epochs alternate between the contenders so that load from other processes on this
        # shared machine hits both alike; the first epoch of each is a warm-up and not counted.
        contenders = {"digits": _DigitsTrainer(x, y, shift_pixels=0, schedule="constant")}
        contenders["digits_default_recipe"] = _DigitsTrainer(x, y)  # cosine schedule + shifts
        if torch is not None:
            contenders["torch"] = _TorchTrainer(torch, x, y)
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for round_ in range(args.epochs + 1):
            for name, trainer in contenders.items():
                seconds = trainer.epoch()
                if round_:
                    times[name].append(seconds)
        ours, ours_default = times["digits"], times["digits_default_recipe"]
        model = MLP(seed=0)
        inference = {
            f"batch_{batch}": _throughput(model.predict_proba, x_test, batch)
            for batch in (1, 64, 512)
        }
        result["digits"] = {
            "epoch_seconds_median": statistics.median(ours),
            "epoch_seconds_all": ours,
            "samples_per_second": len(x) / statistics.median(ours),
            "default_recipe_epoch_seconds_median": statistics.median(ours_default),
            "predict_proba_samples_per_second": inference,
        }
        if torch is not None:
            theirs, torch_model = times["torch"], contenders["torch"].model  # type: ignore[attr-defined]
            with torch.no_grad():

                def torch_predict(rows: np.ndarray) -> object:
                    return torch.softmax(torch_model(torch.from_numpy(rows)), dim=1)  # type: ignore[operator]

                torch_inference = {
                    f"batch_{b}": _throughput(torch_predict, x_test, b) for b in (1, 64, 512)
                }
            result["torch"] = {
                "version": torch.__version__,
                "epoch_seconds_median": statistics.median(theirs),
                "epoch_seconds_all": theirs,
                "samples_per_second": len(x) / statistics.median(theirs),
                "predict_samples_per_second": torch_inference,
            }
            result["speedup_vs_torch"] = statistics.median(theirs) / statistics.median(ours)
        else:
            result["torch"] = None
            result["speedup_vs_torch"] = None
        result["targets"] = {
            "epoch_seconds_le_0.40": statistics.median(ours) <= 0.40,
            "speedup_ge_1.5": None if torch is None else result["speedup_vs_torch"] >= 1.5,  # type: ignore[operator]
        }
        if args.accuracy:
            model = MLP(seed=0)
            run = fit(model, x, y, TrainConfig())
            result["default_config"] = {
                "config": TrainConfig().__dict__,
                "test_accuracy": evaluate(model.predict_proba(x_test), y_test)["accuracy"],
                "train_seconds": run.seconds,
            }
            if torch is not None:
                reference = _TorchTrainer(torch, x, y)
                for _ in range(10):
                    reference.epoch()
                with torch.no_grad():
                    predicted = reference.model(torch.from_numpy(x_test)).argmax(dim=1).numpy()  # type: ignore[operator]
                result["torch_seed_config_10_epochs_test_accuracy"] = float(
                    (predicted == y_test).mean()
                )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
