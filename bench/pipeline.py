"""Prefect's share of a training run: the flow's wall time against the same steps without Prefect.

    python bench/pipeline.py [--mnist-dir DIR] [--epochs 1] [--train-limit N] [--out FILE]

Three timed runs on the same data and settings, each with a fresh dataset cache and registry,
after one untimed warm-up run of the plain steps:
(1) the plain steps called in sequence, timed stage by stage (the reference, no Prefect);
(2) ``train_flow`` once, cold: it includes importing Prefect and starting its ephemeral
server, as `digits train` pays on every invocation; (3) ``train_flow`` again, warm: the
flow's own overhead beyond the server start. MNIST comes from --mnist-dir or $MNIST_DIR
(served through a file:// mirror, so download = copy + sha256). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

from pipeline import gate, steps
from pipeline.download import default_cache_dir, ensure_mnist
from pipeline.plots import plot_confusion_matrix, plot_training_curves
from pipeline.settings import TrainSettings


def _plain_run(settings: TrainSettings) -> tuple[dict[str, float], float]:
    """The flow's steps without Prefect; returns seconds per stage and fit's own seconds."""
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 3)
        clock = now

    paths = ensure_mnist(settings.data_dir or default_cache_dir(), settings.mirrors)
    lap("download")
    dataset = steps.load_dataset(paths, settings.train_limit)
    lap("load")
    trained = steps.train(dataset, settings)
    lap("train")
    metrics = steps.evaluate(trained.model, dataset.x_test, dataset.y_test)
    lap("evaluate")
    champion = gate.evaluate_champion(
        settings.registry_dir, settings.model_name, dataset.x_test, dataset.y_test
    )
    decision = gate.decide(metrics["accuracy"], champion, 0.0, settings.tolerance)
    lap("gate")
    with tempfile.TemporaryDirectory() as tmp:
        plots = {
            "training_curves.png": plot_training_curves(trained.history, Path(tmp) / "c.png"),
            "confusion_matrix.png": plot_confusion_matrix(
                metrics["confusion_matrix"], Path(tmp) / "m.png"
            ),
        }
        lap("plots")
        manifest = steps.build_manifest(settings, trained, metrics, dataset, decision)
        steps.publish(settings, trained.model, manifest, plots, decision)
    lap("publish")
    return stages, trained.seconds


def _settings(args: argparse.Namespace, work: Path, run: str) -> TrainSettings:
    return TrainSettings(
        epochs=args.epochs,
        train_limit=args.train_limit,
        mirrors=(args.mnist_dir.resolve().as_uri() + "/",),
        data_dir=work / run / "cache",
        registry_dir=work / run / "registry",
        min_accuracy=0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", type=Path, default=os.environ.get("MNIST_DIR"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.mnist_dir is None:
        parser.error("give --mnist-dir or set MNIST_DIR (a directory with the four MNIST files)")

    with tempfile.TemporaryDirectory(prefix="digits-bench-") as tmp:
        work = Path(tmp)
        _plain_run(_settings(args, work, "warm-up"))  # page in data and BLAS once, untimed
        started = time.perf_counter()
        stages, plain_fit = _plain_run(_settings(args, work, "plain"))
        plain_total = time.perf_counter() - started

        started = time.perf_counter()
        from pipeline.flows import train_flow  # Prefect import is part of the cold cost

        cold = train_flow(_settings(args, work, "cold"))
        cold_total = time.perf_counter() - started

        started = time.perf_counter()
        warm = train_flow(_settings(args, work, "warm"))
        warm_total = time.perf_counter() - started

    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "epochs": args.epochs,
        "train_limit": args.train_limit,
        "plain_steps_s": round(plain_total, 3),
        "plain_stages_s": stages,
        "train_only_s": round(plain_fit, 3),
        "flow_cold_s": round(cold_total, 3),
        "flow_warm_s": round(warm_total, 3),
        "flow_train_only_s": [cold["train_seconds"], warm["train_seconds"]],
        "prefect_overhead_warm_s": round(warm_total - plain_total, 3),
        "prefect_overhead_cold_s": round(cold_total - plain_total, 3),
        "test_accuracy": warm["metrics"]["accuracy"],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
