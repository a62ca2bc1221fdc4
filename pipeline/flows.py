"""Prefect flow `train_flow`: download, load, train, evaluate, gate and publish as thin tasks."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.states import Failed

from core.mlp import MLP
from pipeline import artifacts, gate, promotion, report, steps
from pipeline.download import (
    MNIST_FILES,
    DownloadError,
    MnistFile,
    default_cache_dir,
    download_limits,
    ensure_mnist,
)
from pipeline.overrides import is_stale, merge_settings
from pipeline.plots import plot_confusion_matrix, plot_training_curves
from pipeline.rollout import rollout_flow
from pipeline.run_context import deployment_settings, name_run, scheduled_slot
from pipeline.settings import TrainSettings
from registry import StoreUnavailableError

__all__ = ["release", "train_flow"]

PLOT_LINKS = {"training_curves.png": "training curves", "confusion_matrix.png": "confusion matrix"}


def _only_transient(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry the download task later only when some mirror might recover (not on 404s)."""
    return bool(getattr(state.data, "transient", False))


def dataset_files(settings: TrainSettings) -> tuple[MnistFile, ...]:
    """The files to fetch with their expected sha256 (MNIST's unless the settings replace them)."""
    digests = settings.file_sha256 or {}
    return tuple(
        MnistFile(f.name, digests[f.name]) if f.name in digests else f for f in MNIST_FILES
    )


# Policy lives in the decorators: only I/O retries; tasks holding arrays skip input hashing.
@task(retries=1, retry_delay_seconds=30, retry_condition_fn=_only_transient)
def download(settings: TrainSettings) -> dict[str, Path]:
    return ensure_mnist(
        settings.data_dir or default_cache_dir(),
        settings.mirrors,
        offline=settings.offline,
        files=dataset_files(settings),
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


def _store_failed(err: StoreUnavailableError) -> State[Any]:
    """A registry-store failure as a Failed state: one line in the log, not a traceback (the
    message names the store and the fix); calling the task still raises ``err``."""
    return Failed(message=str(err), data=err)


@task(cache_policy=NO_CACHE)
def score_champion(settings: TrainSettings, dataset: steps.Dataset) -> gate.Champion | None:
    try:
        return gate.evaluate_champion(
            settings.registry_dir, settings.model_name, dataset.x_test, dataset.y_test
        )
    except StoreUnavailableError as err:
        return _store_failed(err)  # type: ignore[return-value]  # Prefect raises err to callers


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
) -> tuple[int, str]:
    try:
        published = steps.publish(settings, trained.model, manifest, plots)
    except StoreUnavailableError as err:
        return _store_failed(err)  # type: ignore[return-value]  # Prefect raises err to callers
    return published.version, published.location


@task(cache_policy=NO_CACHE)
def promote(
    settings: TrainSettings,
    version: int,
    accuracy: float,
    decision: gate.GateDecision,
    dataset: steps.Dataset,
) -> gate.GateDecision:
    try:
        return promotion.promote_over_champion(
            settings.registry_dir,
            settings.model_name,
            version,
            accuracy,
            decision,
            (dataset.x_test, dataset.y_test),
            settings.tolerance,
            settings.promote_ties,
        )
    except StoreUnavailableError as err:
        return _store_failed(err)  # type: ignore[return-value]  # Prefect raises err to callers


def _finish(result: dict[str, Any]) -> dict[str, Any]:
    artifacts.publish_summary(result)
    name_run(report.run_name(result))
    get_run_logger().info("%s", report.describe(result))
    return result


def release(
    settings: TrainSettings,
    trained: steps.Trained,
    dataset: steps.Dataset,
    extra_manifest: dict[str, Any] | None = None,
) -> dict[str, Any] | State[Any]:
    """Evaluate on the test set, gate, publish unless identical, promote by compare-and-set."""
    metrics = evaluate(trained.model, dataset)
    digest = promotion.weights_digest(trained.model.params)
    same = promotion.find_identical(settings.registry_dir, settings.model_name, digest)
    if same is not None:
        reason = f"identical weights to v{same} (sha256 {digest[:12]}…); nothing published"
        return _finish(report.skipped(settings, reason, identical_to=same))
    decision = gate.decide(
        metrics["accuracy"],
        score_champion(settings, dataset),
        settings.min_accuracy,
        settings.tolerance,
        settings.promote_ties,
        quick_run=gate.quick_run_note(settings.epochs, settings.train_limit),
    )
    artifacts.publish_metrics(metrics, decision)
    if not decision.publish:
        name_run("rejected-by-gate")
        # A Failed state rather than a raise: an expected verdict, not a crash with a traceback.
        return Failed(
            message=f"not published: {decision.reason}", data=gate.GateRejected(decision.reason)
        )
    manifest = {**steps.build_manifest(settings, trained, metrics, dataset, decision)}
    manifest.update(extra_manifest or {})
    with tempfile.TemporaryDirectory(prefix="digits-plots-") as tmp:
        plots = draw_plots(trained, metrics, Path(tmp))
        version, location = publish(settings, trained, manifest, plots)
    rolled = None
    if decision.promote and settings.rollout_metrics and decision.champion_version is not None:
        # A canary rollout instead of a promotion (there is a production to compare with).
        rolled = rollout_flow(version, list(settings.rollout_metrics), settings.registry_dir,
                              settings.model_name, list(settings.rollout_steps),
                              settings.rollout_interval_s)  # fmt: skip
    else:
        decision = promote(settings, version, metrics["accuracy"], decision, dataset)
    artifacts.link_files(location, PLOT_LINKS)
    summary = report.summary(settings, version, metrics, decision, trained)
    if rolled is not None:
        summary["rollout"] = rolled["outcome"]
        summary["promoted"] = rolled["outcome"] == "promoted"
    return _finish(summary)


@flow(name="digits-train")
def train_flow(
    settings: TrainSettings | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    train_limit: int | None = None,
    threads: int | None = None,
    min_accuracy: float | None = None,
    tolerance: float | None = None,
) -> dict[str, Any] | State[Any]:
    """Train, evaluate and gate a model; publish (and maybe promote) it; return a summary.

    In a deployment, ``settings`` given at run time is merged into the deployment's settings
    and each per-field parameter (``epochs``, ...) overrides just that field. A scheduled run
    that starts ``stale_after_s`` after its slot is skipped. Fails with gate.GateRejected
    (nothing published) when test accuracy is below the minimum, and with
    download.DownloadError when the dataset can be neither found nor downloaded.
    """
    fields = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
              "train_limit": train_limit, "threads": threads, "min_accuracy": min_accuracy,
              "tolerance": tolerance}  # fmt: skip
    settings = merge_settings(deployment_settings(), settings, fields)
    slot = scheduled_slot()
    if is_stale(slot, datetime.now(UTC), settings.stale_after_s):
        reason = f"scheduled for {slot:%Y-%m-%d %H:%M} UTC, too late to start (stale_after_s)"
        return _finish(report.skipped(settings, reason, stale=True))
    try:
        paths = download(settings)
    except DownloadError as err:
        # An expected verdict with a one-line reason (what to do), not a crash with a traceback.
        name_run("not-published-no-data")
        return Failed(message=f"not published: {err}", data=err)
    dataset = load(paths, settings.train_limit)
    trained = train(dataset, settings)
    try:
        return release(settings, trained, dataset)
    except StoreUnavailableError as err:
        # The registry's store failed (unreachable, credentials, bucket): an error to fix, with
        # a one-line reason, not a crash with a traceback (`digits train` exits 1 on it).
        name_run("registry-unavailable")
        return Failed(message=str(err), data=err)
