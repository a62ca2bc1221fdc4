"""A run refused by the gate says how to publish it, and ends Failed without an ERROR traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.gate import decide, quick_run_note
from pipeline.settings import TrainSettings


@pytest.mark.parametrize(
    ("epochs", "limit", "note"),
    [(1, None, "a quick run (1 epoch)"), (3, 500, "a quick run (3 epochs, --train-limit 500)"),
     (20, None, None)],
)  # fmt: skip
def test_quick_runs_are_named(epochs: int, limit: int | None, note: str | None) -> None:
    assert quick_run_note(epochs, limit) == note


def test_a_quick_run_rejection_names_the_flag_and_a_value_that_publishes() -> None:
    reason = decide(0.9565, None, 0.97, 0.0, quick_run=quick_run_note(1, None)).reason
    assert reason == (
        "test accuracy 0.9565 is below the minimum 0.97 (--min-accuracy); a quick run "
        "(1 epoch): lower --min-accuracy to publish it, e.g. --min-accuracy 0.95"
    )
    full = decide(0.9565, None, 0.97, 0.0).reason
    assert full == "test accuracy 0.9565 is below the minimum 0.97 (--min-accuracy)"


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_gate_rejection_run_log_has_no_error_traceback(
    tmp_path: Path, synthetic_mnist: tuple[Path, dict[str, str]]
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from pipeline.flows import train_flow

    data_dir, digests = synthetic_mnist
    settings = TrainSettings(
        data_dir=data_dir, offline=True, file_sha256=digests, mirrors=(), epochs=1, lr=1e-5,
        registry_dir=tmp_path / "registry", min_accuracy=0.99,
    )  # fmt: skip
    state = train_flow(settings, return_state=True)
    assert state.is_failed()
    assert state.message is not None and "lower --min-accuracy to publish it" in state.message
    APILogWorker.drain_all(timeout=10)  # the run's logs reach the API in batches
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    assert any("Finished in state Failed" in log.message for log in logs)
    errors = [log.message for log in logs if log.level >= 40]
    assert errors == [], errors  # an expected verdict, not a crash
    assert not any("Traceback" in log.message for log in logs)
