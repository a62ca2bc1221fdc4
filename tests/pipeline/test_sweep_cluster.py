"""Sweeps on a real Dask cluster (dask CLI scheduler, 2 workers) and a real Prefect API."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import TrainSettings
from pipeline.sweep import SweepSpec
from pipeline.sweep_flow import run_sweep
from registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture
def base(tmp_path: Path, synthetic_mnist: tuple[Path, dict[str, str]]) -> TrainSettings:
    data_dir, digests = synthetic_mnist
    return TrainSettings(
        data_dir=data_dir, offline=True, file_sha256=digests, mirrors=(),
        registry_dir=tmp_path / "registry", min_accuracy=0.0, epochs=2,
    )  # fmt: skip


def _table(flow_run_id: Any) -> list[dict[str, Any]]:
    """The sweep's trial table artifact, read back from the Prefect server."""
    import json

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        (table,) = [
            a for a in client.read_artifacts(artifact_filter=run_filter) if a.type == "table"
        ]
    data = table.data if isinstance(table.data, list) else json.loads(table.data)
    return list(data)


def test_four_trials_use_both_workers_and_only_the_best_is_published(base, dask_pair):
    cluster, workers = dask_pair
    spec = SweepSpec(parameters={"lr": [1e-5, 3e-3], "batch_size": [32, 64]})
    state = run_sweep(base, spec, cluster.address, return_state=True)
    result = state.result()
    trials = result["trials"]
    assert len(trials) == 4 and {t["worker"] for t in trials} == set(workers.values())
    best = max(trials, key=lambda t: (t["val_accuracy"], -t["val_loss"]))
    assert trials[0] == best and trials[0]["rank"] == 1
    registry = Registry(base.registry_dir)
    assert [v.version for v in registry.list_versions("digits")] == [1] == [result["version"]]
    manifest = registry.get("digits", 1).manifest
    assert manifest["sweep"]["rank"] == 1 and manifest["sweep"]["trials"] == 4
    assert manifest["sweep"]["parameters"] == {"lr": best["lr"], "batch_size": best["batch_size"]}
    assert manifest["training"]["threads"] == 1
    table = _table(state.state_details.flow_run_id)
    assert sorted(row["index"] for row in table) == [0, 1, 2, 3]
    assert {row["worker"] for row in table} == set(workers.values())


def test_a_worker_killed_mid_sweep_reruns_its_trial_elsewhere(base, dask_pair):
    cluster, workers = dask_pair
    # Long enough trials (~1-2 s each) that "b" is surely busy when it dies.
    spec = SweepSpec(parameters={"seed": [0, 1, 2, 3]})
    settings = base.model_copy(update={"epochs": 120})
    killed = threading.Event()

    def kill_b_when_busy() -> None:
        from distributed import Client

        with Client(cluster.address, set_as_default=False) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if client.processing().get(workers["b"]):
                    cluster.kill_worker("b")
                    killed.set()
                    return
                time.sleep(0.05)

    killer = threading.Thread(target=kill_b_when_busy, daemon=True)
    killer.start()
    result = run_sweep(settings, spec, cluster.address)
    killer.join(timeout=10)
    assert killed.is_set()
    trials = result["trials"]
    assert sorted(t["index"] for t in trials) == [0, 1, 2, 3]
    assert workers["a"] in {t["worker"] for t in trials}
    registry = Registry(settings.registry_dir)
    assert [v.version for v in registry.list_versions("digits")] == [1]
