"""Prefect flow `train_flow`: download, load, train, evaluate, gate and publish as thin tasks."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.states import Failed

from core.mlp import MLP
from pipeline import artifacts, gate, report, steps
from pipeline.download import (
    MNIST_FILES,
    DownloadError,
    MnistFile,
    default_cache_dir,
    download_limits,
    ensure_mnist,
)
from pipeline.plots import plot_confusion_matrix, plot_training_curves
from pipeline.settings import TrainSettings

__all__ = ["train_flow"]


def _only_transient(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry the download task later only when some mirror might recover (not on 404s)."""
    return bool(getattr(state.data, "transient", False))


# Policy lives in the decorators: only I/O retries; tasks holding arrays skip input hashing.
@task(retries=1, retry_delay_seconds=30, retry_condition_fn=_only_transient)
def download(settings: TrainSettings) -> dict[str, Path]:
    digests = settings.file_sha256 or {}
    files = tuple(
        MnistFile(f.name, digests[f.name]) if f.name in digests else f for f in MNIST_FILES
    )
    cache_dir = settings.data_dir or default_cache_dir()
    return ensure_mnist(
        cache_dir,
        settings.mirrors,
        offline=settings.offline,
        files=files,
        retries=settings.download_retries,
        base_delay_s=settings.download_backoff_s,
        limits=download_limits(settings),
        logger=get_run_logger(),
    )


@task(cache_policy=NO_CACHE)
def load(paths: dict[str, Path], train_limit: int | None) -> steps.Dataset:
    return steps.load_dataset(paths, train_limit)


@task(cache_policy=NO_CACHE)
def train(dataset: steps.Dataset, settings: TrainSettings) -> steps.Trained:
    progress = artifacts.EpochReporter(get_run_logger(), settings.epochs)
    return steps.train(dataset, settings, on_epoch=progress)


@task(cache_policy=NO_CACHE)
def evaluate(model: MLP, dataset: steps.Dataset) -> dict[str, Any]:
    return steps.evaluate(model, dataset.x_test, dataset.y_test)


@task(cache_policy=NO_CACHE)
def score_champion(settings: TrainSettings, dataset: steps.Dataset) -> gate.Champion | None:
    return gate.evaluate_champion(
        settings.registry_dir, settings.model_name, dataset.x_test, dataset.y_test
    )


@task(cache_policy=NO_CACHE)
def draw_plots(trained: steps.Trained, metrics: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    return {
        "training_curves.png": plot_training_curves(trained.history, out_dir / "curves.png"),
        "confusion_matrix.png": plot_confusion_matrix(
            metrics["confusion_matrix"], out_dir / "confusion.png"
        ),
    }


@task(cache_policy=NO_CACHE)
def publish(
    settings: TrainSettings,
    trained: steps.Trained,
    manifest: dict[str, Any],
    plots: dict[str, Path],
    decision: gate.GateDecision,
) -> int:
    return steps.publish(settings, trained.model, manifest, plots, decision).version


@flow(name="digits-train")
def train_flow(settings: TrainSettings | None = None) -> dict[str, Any] | State[Any]:
    """Train, evaluate and gate a model; publish (and maybe promote) it; return a summary.

    Fails with gate.GateRejected (nothing published) when test accuracy is below the minimum,
    and with download.DownloadError when the dataset can be neither found nor downloaded.
    """
    settings = settings or TrainSettings()
    try:
        paths = download(settings)
    except DownloadError as err:
        # An expected verdict with a one-line reason (what to do), not a crash with a traceback.
        return Failed(message=f"not published: {err}", data=err)
    dataset = load(paths, settings.train_limit)
    trained = train(dataset, settings)
    metrics = evaluate(trained.model, dataset)
    champion = score_champion(settings, dataset)
    quick = gate.quick_run_note(settings.epochs, settings.train_limit)
    decision = gate.decide(
        metrics["accuracy"], champion, settings.min_accuracy, settings.tolerance, quick_run=quick
    )
    artifacts.publish_metrics(metrics, decision)
    if not decision.publish:
        # A Failed state rather than a raise: an expected verdict, not a crash with a traceback.
        message = f"not published: {decision.reason}"
        return Failed(message=message, data=gate.GateRejected(decision.reason))
    manifest = steps.build_manifest(settings, trained, metrics, dataset, decision)
    with tempfile.TemporaryDirectory(prefix="digits-plots-") as tmp:
        plots = draw_plots(trained, metrics, Path(tmp))
        version = publish(settings, trained, manifest, plots, decision)
    summary = report.summary(settings, version, metrics, decision, trained)
    get_run_logger().info("%s", report.describe(summary))
    return summary
