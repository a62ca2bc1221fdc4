"""Prefect flow `sweep_flow`: every trial a Prefect task on a Dask cluster, the winner released."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect_dask.task_runners import DaskTaskRunner

from core.mlp import MLP
from pipeline import artifacts, steps
from pipeline.cluster import warm_workers
from pipeline.flows import dataset_files, download, load, release
from pipeline.settings import TrainSettings
from pipeline.sweep import SweepSpec, expand, rank
from pipeline.trial import DataRef, TrialResult, run_trial

__all__ = ["run_sweep", "sweep_flow"]


# No retries: training is deterministic; a trial whose worker dies is re-run by Dask elsewhere.
@task(cache_policy=NO_CACHE, task_run_name="trial-{index}")
def trial(index: int, settings: TrainSettings, ref: DataRef, swept: dict[str, Any]) -> TrialResult:
    return run_trial(index, settings, ref, swept)


def _swept(spec: SweepSpec, settings: TrainSettings) -> dict[str, Any]:
    return settings.model_dump(mode="json", include=set(spec.parameters))


@flow(name="digits-sweep")
def sweep_flow(
    settings: TrainSettings, spec: SweepSpec, dask_address: str
) -> dict[str, Any] | State[Any]:
    """Run the trials on the cluster at ``dask_address``; gate and publish only the winner.

    Ranks on held-out training rows; the test set is seen only by the winner (release).
    """
    log = get_run_logger()
    trials = expand(spec, settings)
    paths = download(settings)
    ref = DataRef(
        paths=tuple(sorted((name, str(path.resolve())) for name, path in paths.items())),
        sha256=tuple(sorted((f.name, f.sha256) for f in dataset_files(settings))),
        train_limit=settings.train_limit,
        validation_fraction=spec.validation_fraction,
    )
    started = time.perf_counter()
    log.info("workers ready (import + data load, s): %s", warm_workers(dask_address, ref))
    warmed = time.perf_counter()
    futures = [trial.submit(i, t, ref, _swept(spec, t)) for i, t in enumerate(trials)]
    results = [future.result() for future in futures]
    trained_all = time.perf_counter()
    ranked = rank([result.row for result in results])
    artifacts.trial_table(ranked)
    best = results[ranked[0]["index"]]
    winner = trials[ranked[0]["index"]]
    log.info("winner: trial %d %s", ranked[0]["index"], _swept(spec, winner))
    model = MLP.from_params(best.params, loss=winner.loss)
    trained = steps.Trained(model, best.history, best.train_seconds, threads=1)
    record = {
        "sweep": {
            "method": spec.method,
            "trials": len(trials),
            "rank": 1,
            "parameters": _swept(spec, winner),
            "val_accuracy": ranked[0]["val_accuracy"],
            "val_loss": ranked[0]["val_loss"],
            "validation_fraction": spec.validation_fraction,
            "searched": {k: _jsonable(v) for k, v in spec.parameters.items()},
        }
    }
    outcome = release(winner, trained, load(paths, settings.train_limit), record)
    if isinstance(outcome, dict):
        timing = {
            "warm_s": round(warmed - started, 3),
            "trials_s": round(trained_all - warmed, 3),
            "release_s": round(time.perf_counter() - trained_all, 3),
        }
        return {**outcome, "sweep": record["sweep"], "trials": ranked, "timing": timing}
    return outcome


def _jsonable(values: Any) -> Any:
    return values if isinstance(values, list) else values.model_dump()


def run_sweep(
    settings: TrainSettings, spec: SweepSpec, dask_address: str, return_state: bool = False
) -> Any:
    """Call ``sweep_flow`` with its tasks on the Dask scheduler at ``dask_address``."""
    runner = DaskTaskRunner(address=dask_address)
    # Its futures are PrefectDaskFutures; Flow's annotation (invariant generic) says otherwise.
    flow_: Any = sweep_flow.with_options(task_runner=runner)  # type: ignore[arg-type]
    return flow_(settings, spec, dask_address, return_state=return_state)
