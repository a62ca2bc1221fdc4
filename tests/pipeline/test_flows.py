"""train_flow under a real (temporary) Prefect server: gating, promotion, failures, concurrency."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.train import DivergenceError
from pipeline.download import DownloadError
from pipeline.flows import train_flow
from pipeline.gate import GateRejected
from pipeline.settings import TrainSettings
from registry import NotFoundError, Registry

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

WEAK = {"epochs": 1, "lr": 1e-5}  # barely moves from the random initialisation
STRONG = {"epochs": 3, "lr": 5e-3, "batch_size": 32}


@pytest.fixture
def make_settings(tmp_path: Path, synthetic_mnist: tuple[Path, dict[str, str]]):
    data_dir, digests = synthetic_mnist

    def make(**fields: Any) -> TrainSettings:
        base: dict[str, Any] = {
            "data_dir": data_dir,
            "offline": True,
            "file_sha256": digests,
            "mirrors": (),
            "registry_dir": tmp_path / "registry",
            "model_name": "digits",
            "min_accuracy": 0.0,
        }
        return TrainSettings(**{**base, **fields})

    return make


def _versions(settings: TrainSettings) -> list[int]:
    try:
        return [v.version for v in Registry(settings.registry_dir).list_versions("digits")]
    except NotFoundError:
        return []


def test_better_challenger_is_promoted_and_worse_one_only_published(make_settings):
    first = train_flow(make_settings(**WEAK))
    assert (first["version"], first["promoted"]) == (1, True)
    assert "no production version" in first["reason"]

    better = train_flow(make_settings(**STRONG))
    assert (better["version"], better["promoted"]) == (2, True)
    assert better["metrics"]["accuracy"] > 0.9 > first["metrics"]["accuracy"]
    assert better["champion_version"] == 1

    settings = make_settings(**WEAK, seed=1)  # seed 0 would be identical to v1 (not published)
    state = train_flow(settings, return_state=True)
    worse = state.result()
    assert (worse["version"], worse["promoted"]) == (3, False)
    assert "is worse: production v2 scores" in worse["reason"]
    registry = Registry(settings.registry_dir)
    assert registry.aliases("digits") == {"production": 2}
    manifest = registry.get("digits", 3).manifest
    assert manifest["gate"] == {
        "promote": False,
        "reason": worse["reason"],
        "champion_version": 2,
        "champion_accuracy": better["metrics"]["accuracy"],
    }
    assert {"training_curves.png", "confusion_matrix.png"} <= set(manifest["files"])
    artifacts = _artifacts_of(state.state_details.flow_run_id)
    assert float(artifacts["digits-training-progress"].data) == 100.0
    metrics_table = artifacts["digits-test-metrics"].data
    assert "**Gate: publish only.**" in metrics_table
    assert f"| accuracy | {worse['metrics']['accuracy']:.4f} |" in metrics_table
    assert artifacts["digits-run-summary"].data.startswith("# Published digits v3")
    assert "- alias: not promoted" in artifacts["digits-run-summary"].data
    curves = (registry.get("digits", 3).path.resolve() / "training_curves.png").as_uri()
    assert artifacts["digits-training-curves"].data == f"[training curves]({curves})"
    assert _run_name(state.state_details.flow_run_id) == "published-v3-not-promoted"


def _artifacts_of(flow_run_id: Any) -> dict[str, Any]:
    """The run's artifacts by key, read back from the Prefect server."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        return {a.key: a for a in client.read_artifacts(artifact_filter=run_filter)}


def _run_name(flow_run_id: Any) -> str:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return str(client.read_flow_run(flow_run_id).name)


def test_below_minimum_accuracy_fails_and_publishes_nothing(make_settings):
    settings = make_settings(**WEAK, min_accuracy=0.99)
    with pytest.raises(GateRejected, match=r"below the minimum 0\.99"):
        train_flow(settings)  # the flow ends Failed; calling it raises the verdict
    assert _versions(settings) == []


def test_divergence_fails_and_publishes_nothing(make_settings):
    settings = make_settings(epochs=1, lr=1e15)
    with pytest.raises(DivergenceError, match="diverged"), np.errstate(all="ignore"):
        train_flow(settings)
    assert _versions(settings) == []


def test_all_mirrors_down_fails_with_every_url(make_settings, mirror_factory, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    server = mirror_factory(empty)
    settings = make_settings(data_dir=tmp_path / "cache", offline=False, mirrors=(server.url,))
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        train_flow(settings)
    assert server.url + "train-images-idx3-ubyte.gz" in str(err.value)
    assert "--offline --data-dir" in str(err.value)  # one line saying what to do instead
    assert sum(server.requests.values()) == 1  # a 404 is neither retried nor task-retried
    assert _versions(settings) == []


def test_two_flows_at_once_publish_distinct_versions(make_settings):
    settings = make_settings(**WEAK)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            results.append(train_flow(settings.model_copy(update={"seed": seed})))
        except BaseException as err:  # surfaced below; a thread cannot fail the test itself
            errors.append(err)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(r["version"] for r in results) == [1, 2] == _versions(settings)
    assert Registry(settings.registry_dir).aliases("digits")["production"] in (1, 2)


def test_identical_rerun_publishes_nothing_and_says_so(make_settings):
    """A nightly run on unchanged data, code and seed: same weights, so no new version."""
    settings = make_settings(**WEAK, threads=1)
    first = train_flow(settings)
    state = train_flow(settings, return_state=True)
    again = state.result()
    assert _versions(settings) == [first["version"]] == [1]
    assert again == {**again, "published": False, "skipped": True, "identical_to": 1}
    assert _run_name(state.state_details.flow_run_id) == "unchanged-same-as-v1"
    manifest = Registry(settings.registry_dir).get("digits", 1).manifest
    assert manifest["training"]["threads"] == 1


def test_an_unusable_registry_store_fails_the_run_with_one_line(
    make_settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from registry import StoreUnavailableError
    from tests.helpers.seaweedfs import free_port

    # Nothing listens there: the store fails once training is done and the registry is read.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    settings = make_settings(**WEAK, registry_dir="s3://digits/unreachable")
    with caplog.at_level(logging.INFO):
        state = train_flow(settings, return_state=True)
    assert state.is_failed()
    assert str(state.message).startswith("cannot reach the registry s3://digits/unreachable")
    with pytest.raises(StoreUnavailableError):
        state.result()
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert tracebacks == []
