"""Prefect's share of a training run: the flow's wall time against the same steps without Prefect.

    python bench/pipeline.py [--mnist-dir DIR] [--epochs 1] [--train-limit N] [--out FILE]
    python bench/pipeline.py --sweep [--mnist-dir DIR] [--epochs 2] [--out FILE]

--sweep: an 8-trial grid (lr x batch_size x seed, --epochs each) on a LocalCluster of 1 worker,
then on one of 2 workers, in the same run, against one Prefect server started for the
benchmark (its start-up is reported). Each worker is one process with 1 BLAS thread. Reported
per cluster: the trial phase (all trials submitted until all done, workers already warm), the
warm-up (imports + dataset load per worker), the whole flow, the summed training time, and the
per-trial overhead beyond training = (trial phase x workers - summed training) / trials.

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
        steps.publish(settings, trained.model, manifest, plots)
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


def _sweep_point(args: argparse.Namespace, work: Path, workers: int) -> dict[str, Any]:
    from pipeline.cluster import dask_cluster
    from pipeline.sweep import SweepSpec
    from pipeline.sweep_flow import run_sweep

    spec = SweepSpec(parameters={"lr": [1e-3, 2e-3], "batch_size": [64, 128], "seed": [0, 1]})
    settings = _settings(args, work, f"sweep-{workers}")
    started = time.perf_counter()
    with dask_cluster(None, workers) as address:
        cluster_up = time.perf_counter() - started
        result = run_sweep(settings, spec, address)
        flow_s = time.perf_counter() - started - cluster_up
    trials = result["trials"]
    training = sum(t["seconds"] for t in trials)
    phase = result["timing"]["trials_s"]
    return {
        "workers": workers,
        "trials": len(trials),
        "cluster_start_s": round(cluster_up, 3),
        "flow_s": round(flow_s, 3),
        **result["timing"],
        "training_sum_s": round(training, 3),
        "overhead_per_trial_s": round((phase * workers - training) / len(trials), 3),
        "workers_used": sorted({t["worker"] for t in trials}),
        "winner": result["sweep"]["parameters"],
        "winner_test_accuracy": result["metrics"]["accuracy"],
    }


def _sweep_main(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.api_server import prefect_api

    with tempfile.TemporaryDirectory(prefix="digits-bench-") as tmp, prefect_api() as api:
        one = _sweep_point(args, Path(tmp), 1)
        two = _sweep_point(args, Path(tmp), 2)
    return {
        "benchmark": "pipeline-sweep",
        "epochs_per_trial": args.epochs,
        "train_limit": args.train_limit,
        "blas_threads_per_worker": 1,
        "prefect_server_start_s": round(api.started_s, 3),
        "one_worker": one,
        "two_workers": two,
        "speedup_trial_phase": round(one["trials_s"] / two["trials_s"], 2),
        "speedup_flow": round(one["flow_s"] / two["flow_s"], 2),
        "python": platform.python_version(),
        "cpus_usable": len(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", type=Path, default=os.environ.get("MNIST_DIR"))
    parser.add_argument("--epochs", type=int, default=None, help="1 (flow), 2 (--sweep)")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--sweep", action="store_true", help="8-trial sweep, 1 vs 2 workers")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.mnist_dir is None:
        parser.error("give --mnist-dir or set MNIST_DIR (a directory with the four MNIST files)")
    if args.epochs is None:
        args.epochs = 2 if args.sweep else 1
    if args.sweep:
        _print(_sweep_main(args), args.out)
        return

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
    _print(result, args.out)


def _print(result: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")


if __name__ == "__main__":
    main()
