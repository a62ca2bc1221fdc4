"""Feedback: true labels for logged request ids move digits_live_accuracy to the right value;
unknown ids are NOT_FOUND and labels outside 0-9 INVALID_ARGUMENT, over unary and streaming."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from registry import Registry
from service.client import ServiceError
from service.generated.digits.v1 import digits_pb2 as pb
from tests.helpers.metrics_text import by_label, value
from tests.helpers.servers import Running, start
from tests.helpers.toy_models import publish, random_images

pytestmark = pytest.mark.integration


@pytest.fixture
def running(tmp_path: Path) -> Running:
    registry = Registry(tmp_path / "models")
    publish(registry, seed=1)  # manifest accuracy 0.51
    server = start(registry, feedback_window=50)
    yield server
    server.close()


def test_live_accuracy_is_the_fraction_of_confirmed_answers(running: Running):
    answers = [running.client.predict(random_images(1, seed=i)) for i in range(10)]
    # The first 7 get their own answer as the truth, the last 3 a different class.
    for i, answer in enumerate(answers):
        predicted = int(answer.labels[0])
        label = predicted if i < 7 else (predicted + 1) % 10
        verdict = running.client.feedback(answer.request_id, label)
        assert (verdict.version, verdict.predicted, verdict.correct) == (1, predicted, i < 7)
    assert value(running, "digits_live_accuracy", version="1") == pytest.approx(0.7)
    outcomes = by_label(running, "digits_feedback_total", "outcome", version="1")
    assert outcomes == {"correct": 7.0, "wrong": 3.0}
    assert value(running, "digits_model_test_accuracy", version="1") == pytest.approx(0.51)


def test_feedback_stream_counts_every_label(running: Running):
    answer = running.client.predict(random_images(4, seed=2), request_id="four")
    labels = [("four", int(label), index) for index, label in enumerate(answer.labels)]
    labels[3] = ("four", (int(answer.labels[3]) + 1) % 10, 3)
    assert running.client.feedback_stream(labels) == 3
    assert value(running, "digits_live_accuracy", version="1") == pytest.approx(0.75)


def test_unknown_and_forgotten_ids_are_not_found(running: Running):
    with pytest.raises(ServiceError) as unknown:
        running.client.feedback("never-sent", 3)
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND
    first = running.client.predict(random_images(1), request_id="first")
    for i in range(50):  # the window remembers 50 ids: "first" is pushed out
        running.client.predict(random_images(1, seed=i))
    with pytest.raises(ServiceError) as forgotten:
        running.client.feedback(first.request_id, 3)
    assert forgotten.value.code == grpc.StatusCode.NOT_FOUND
    assert value(running, "digits_live_accuracy", version="1") is None


@pytest.mark.parametrize("label", [-1, 10, 1 << 40])
def test_labels_outside_0_to_9_are_invalid(running: Running, label: int):
    answer = running.client.predict(random_images(1))
    with pytest.raises(ServiceError) as bad:
        running.client.feedback(answer.request_id, label)
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "label" in str(bad.value)


def test_an_index_past_the_request_is_invalid(running: Running):
    answer = running.client.predict(random_images(2))
    with pytest.raises(ServiceError) as bad:
        running.client.feedback(answer.request_id, 1, index=2)
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_bad_message_ends_the_stream_after_counting_the_ones_before(running: Running):
    answer = running.client.predict(random_images(1), request_id="one")
    label = int(answer.labels[0])
    with pytest.raises(ServiceError) as bad:
        running.client.feedback_stream([("one", label), ("nope", 1)])
    assert bad.value.code == grpc.StatusCode.NOT_FOUND
    assert by_label(running, "digits_feedback_total", "outcome", version="1") == {
        "correct": 1.0, "wrong": 0.0,
    }  # fmt: skip


def test_feedback_off_answers_not_found(tmp_path: Path):
    registry = Registry(tmp_path / "models")
    publish(registry, seed=1)
    server = start(registry, feedback_window=0)
    try:
        answer = server.client.predict(random_images(1))
        request = pb.FeedbackRequest(request_id=answer.request_id, label=1)
        with pytest.raises(grpc.RpcError) as off:
            server.stub.Feedback(request, timeout=10)
        assert off.value.code() == grpc.StatusCode.NOT_FOUND
        assert "off" in off.value.details()
    finally:
        server.close()


def test_generated_request_ids_can_be_labelled(running: Running):
    answer = running.client.predict(np.zeros((1, 784), np.uint8))
    assert answer.request_id  # the server made one up and returned it
    assert running.client.feedback(answer.request_id, int(answer.labels[0])).correct
