"""The prediction log: every sampled request on disk (failures too), drops counted when the
writer falls behind, rotation, and `digits logs` reading it back (tail, export to IDX)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from core.idx import decode_images, decode_labels
from registry import Registry
from service.client import ServiceError
from service.observability.log_records import (
    decode_input,
    decode_probabilities,
    log_files,
    read_records,
)
from service.observability.prediction_log import PredictionLog
from tests.helpers.metrics_text import value
from tests.helpers.servers import start
from tests.helpers.toy_models import publish, random_images

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "models")
    publish(reg, seed=1)
    return reg


def digits(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *argv], capture_output=True, text=True, timeout=120
    )


def test_every_request_is_logged_with_its_id_version_and_status(registry: Registry, tmp_path):
    log_dir = tmp_path / "log"
    running = start(registry, prediction_log=log_dir, log_sample_rate=1.0)
    sent: dict[str, tuple[str, np.ndarray | None]] = {}
    try:
        for i in range(12):
            images = random_images(1 + i % 3, seed=i)
            running.client.predict(images, request_id=f"ok-{i}")
            sent[f"ok-{i}"] = ("OK", images)
        for i in range(3):
            with pytest.raises(ServiceError) as failure:
                running.client.predict(random_images(1), version=99, request_id=f"missing-{i}")
            assert failure.value.code == grpc.StatusCode.NOT_FOUND
            sent[f"missing-{i}"] = ("NOT_FOUND", None)
        with pytest.raises(ServiceError):
            running.client.predict(np.full((1, 784), 2.0, np.float32), request_id="bad")
        sent["bad"] = ("INVALID_ARGUMENT", None)
    finally:
        running.close()  # the writer writes what is queued and closes the file
    records = [r for r in read_records(log_dir) if r["kind"] == "prediction"]
    assert [r["request_id"] for r in records] == list(sent)  # failures in order among answers
    assert {r["request_id"]: r["status"] for r in records} == {k: v[0] for k, v in sent.items()}
    for record in records:
        status, images = sent[record["request_id"]]
        assert record["method"] == "Predict" and record["time"].endswith("Z")
        assert record["latency_ms"] > 0
        if status == "OK":
            assert record["version"] == 1 and record["error"] is None
            np.testing.assert_array_equal(decode_input(record), images)
            probabilities = decode_probabilities(record)
            assert probabilities.shape == (len(images), 10)
            assert record["labels"] == probabilities.argmax(axis=1).tolist()
        else:
            assert record["version"] is None and record["error"]
    with gzip.open(log_files(log_dir)[0]) as closed:  # a closed file is plain gzip
        assert len(closed.read().splitlines()) == len(sent)


def test_a_full_queue_drops_records_but_never_a_request(registry: Registry, tmp_path):
    log_dir = tmp_path / "log"
    # The writer sleeps a minute between drains: only 3 records can wait, the rest are dropped.
    running = start(registry, prediction_log=log_dir, log_queue_size=3, log_flush_interval_s=60)
    try:
        answers = [running.client.predict(random_images(1, seed=i)) for i in range(20)]
        assert all(a.version == 1 for a in answers)
        assert value(running, "digits_prediction_log_records_total", outcome="dropped") == 17
        assert value(running, "digits_prediction_log_records_total", outcome="written") == 0
    finally:
        running.close()
    assert len(list(read_records(log_dir))) == 3


def test_sampling_logs_about_the_requested_fraction(registry: Registry, tmp_path):
    running = start(registry, prediction_log=tmp_path / "log", log_sample_rate=0.25)
    try:
        for i in range(400):
            running.client.predict(random_images(1, seed=i))
    finally:
        running.close()
    logged = len(list(read_records(tmp_path / "log")))
    assert 60 <= logged <= 140  # binomial(400, 0.25): mean 100, sd 8.7


def test_files_rotate_by_size_and_age_and_read_back_in_order(tmp_path: Path):
    # The writer thread sleeps for an hour: the test drains by hand, one record per flush.
    log = PredictionLog(tmp_path / "log", max_bytes=4096, flush_interval_s=3600)
    log.start()
    rng = np.random.default_rng(0)
    probabilities = np.full((1, 10), 0.1, np.float32)
    try:
        for i in range(40):
            pixels = rng.integers(0, 256, (1, 784), dtype=np.uint8)  # ~1 kB compressed each
            log.submit(1e9 + i, f"r{i}", "Predict", 1, 0.001, "OK", None, pixels, probabilities)
            log._drain()
    finally:
        log.close()
    assert len(log_files(tmp_path / "log")) >= 5
    assert [r["request_id"] for r in read_records(tmp_path / "log")] == [f"r{i}" for i in range(40)]
    aged = PredictionLog(tmp_path / "aged", max_age_s=1e-6, flush_interval_s=3600)
    aged.start()
    try:
        for i in range(3):
            aged.submit_feedback(1e9, f"r{i}", 0, 1, 1, 1)
            aged._drain()
    finally:
        aged.close()
    assert len(log_files(tmp_path / "aged")) == 3


def test_the_open_file_is_readable_before_it_is_closed(registry: Registry, tmp_path):
    running = start(registry, prediction_log=tmp_path / "log", log_flush_interval_s=3600)
    try:
        running.client.predict(random_images(2), request_id="early")
        running.server.core.monitoring.sync()
        assert [r["request_id"] for r in read_records(tmp_path / "log")] == ["early"]
    finally:
        running.close()


def test_logs_export_round_trips_through_idx_and_digits_predict(registry: Registry, tmp_path):
    log_dir, out = tmp_path / "log", tmp_path / "export"
    images = random_images(6, seed=3)
    running = start(registry, prediction_log=log_dir, log_flush_interval_s=3600)
    try:
        answer = running.client.predict(images, request_id="batch")
        for index in range(6):
            running.client.feedback("batch", label=(index + 1) % 10, index=index)
        running.server.core.monitoring.sync()
        tail = digits("logs", "tail", str(log_dir), "-n", "3")
        assert tail.returncode == 0 and len(tail.stdout.splitlines()) == 3, tail.stderr
        assert "feedback" in tail.stdout
        result = digits("logs", "export", str(log_dir), str(out))
        assert result.returncode == 0, result.stderr
        exported = decode_images((out / "logged-images-idx3-ubyte.gz").read_bytes())
        labels = decode_labels((out / "logged-labels-idx1-ubyte.gz").read_bytes())
        np.testing.assert_array_equal(exported, images)
        assert labels.tolist() == [(i + 1) % 10 for i in range(6)]
        predicted = digits("predict", "--target", running.target, "--json",
                           str(out / "logged-images-idx3-ubyte.gz"))  # fmt: skip
        assert predicted.returncode == 0, predicted.stderr
        rows = json.loads(predicted.stdout)["predictions"]
        assert [row["label"] for row in rows] == answer.labels.tolist()
    finally:
        running.close()


def test_export_without_feedback_names_the_problem(registry: Registry, tmp_path):
    running = start(registry, prediction_log=tmp_path / "log")
    try:
        running.client.predict(random_images(1))
    finally:
        running.close()
    result = digits("logs", "export", str(tmp_path / "log"), str(tmp_path / "out"))
    assert result.returncode == 1 and "--predicted-labels" in result.stderr
    assert "Traceback" not in result.stderr
    assert digits("logs", "export", str(tmp_path / "log"), str(tmp_path / "out"),
                  "--predicted-labels").returncode == 0  # fmt: skip
    missing = digits("logs", "tail", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "no prediction log directory" in missing.stderr


def test_records_are_json_whatever_the_request_id_and_error_hold():
    from service.observability.log_records import encode_prediction

    odd = 'quote " back\\slash \n newline ünïcødé'
    pixels = np.arange(784, dtype=np.uint8).reshape(1, 784)
    floats = pixels.astype(np.float32) / 255
    line = encode_prediction(1_700_000_000.25, odd, "Predict", None, 0.5, "INTERNAL", odd,
                             floats, None)  # fmt: skip
    record = json.loads(line)
    assert (record["request_id"], record["error"], record["version"]) == (odd, odd, None)
    assert record["time"] == "2023-11-14T22:13:20.250000Z" and record["latency_ms"] == 500
    np.testing.assert_array_equal(decode_input(record), pixels.reshape(1, 28, 28))
    assert "probabilities" not in record and line.endswith(b"}\n")


def test_v2_model_infer_is_logged_and_its_ids_take_feedback(registry: Registry, tmp_path):
    from service.generated.inference import grpc_predict_v2_pb2 as v2
    from service.generated.inference import grpc_predict_v2_pb2_grpc as v2_grpc

    def infer(images: np.ndarray, request_id: str, model: str = "digits") -> v2.ModelInferRequest:
        request = v2.ModelInferRequest(model_name=model, id=request_id)
        request.inputs.add(name="images", datatype="UINT8", shape=list(images.shape))
        request.raw_input_contents.append(images.tobytes())
        return request

    running = start(registry, enable_v2=True, prediction_log=tmp_path / "log")
    try:
        stub = v2_grpc.GRPCInferenceServiceStub(running.channel)
        images = random_images(3, seed=4)
        answer = stub.ModelInfer(infer(images, "v2-ok"), timeout=10)
        assert answer.id == "v2-ok"
        with pytest.raises(grpc.RpcError) as unknown:
            stub.ModelInfer(infer(images, "v2-bad", model="other"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        predicted = np.frombuffer(answer.raw_output_contents[0], "<f4").reshape(3, 10).argmax(1)
        assert running.client.feedback("v2-ok", int(predicted[2]), index=2).correct
    finally:
        running.close()
    records = {
        r["request_id"]: r for r in read_records(tmp_path / "log") if r["kind"] == "prediction"
    }
    assert records["v2-ok"]["method"] == "ModelInfer" and records["v2-ok"]["status"] == "OK"
    np.testing.assert_array_equal(decode_input(records["v2-ok"]), images)
    assert records["v2-bad"]["status"] == "NOT_FOUND" and "input" not in records["v2-bad"]


def test_an_unusable_log_directory_stops_the_server_with_one_line(tmp_path: Path):
    (tmp_path / "file").write_text("not a directory")
    log_dir = str(tmp_path / "file" / "log")
    result = digits("serve", "--registry", str(tmp_path / "models"), "--port", "0",
                    "--metrics-port", "-1", "--prediction-log", log_dir)  # fmt: skip
    assert result.returncode == 1
    assert f"prediction log directory {tmp_path / 'file' / 'log'}: Not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_v2_rest_inference_is_logged_failures_with_their_http_status(registry: Registry, tmp_path):
    import httpx

    from tests.helpers.servers import free_port

    running = start(registry, http_port=free_port(), prediction_log=tmp_path / "log")
    images = random_images(2, seed=6)
    tensor = {"name": "images", "datatype": "UINT8", "shape": [2, 784]}
    body = {"id": "rest-ok", "inputs": [{**tensor, "data": images.ravel().tolist()}]}
    try:
        with httpx.Client(base_url=running.http_url, timeout=10) as http:
            ok = http.post("/v2/models/digits/infer", json=body)
            assert ok.status_code == 200 and ok.json()["id"] == "rest-ok"
            missing = http.post("/v2/models/digits/versions/9/infer", json={**body, "id": "gone"})
            assert missing.status_code == 404
        probabilities = np.asarray(ok.json()["outputs"][0]["data"]).reshape(2, 10)
        label = int(probabilities[1].argmax())
        assert running.client.feedback("rest-ok", label, index=1).correct
    finally:
        running.close()
    records = {
        r["request_id"]: r for r in read_records(tmp_path / "log") if r["kind"] == "prediction"
    }
    assert (records["rest-ok"]["method"], records["rest-ok"]["status"]) == ("ModelInferREST", "OK")
    np.testing.assert_array_equal(decode_input(records["rest-ok"]), images)
    assert records["gone"]["status"] == "404" and records["gone"]["error"]


def test_the_drawing_page_is_logged_and_takes_feedback_by_its_request_id(
    registry: Registry, tmp_path
):
    import io

    import httpx
    from PIL import Image, ImageDraw

    from tests.helpers.servers import free_port

    picture = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(picture).line([(90, 60), (190, 60), (120, 230)], fill=0, width=24)
    png = io.BytesIO()
    picture.save(png, format="PNG")
    running = start(registry, http_port=free_port(), prediction_log=tmp_path / "log")
    try:
        with httpx.Client(base_url=running.http_url, timeout=10) as http:
            drawn = http.post("/v1/draw", content=png.getvalue(),
                              headers={"X-Request-Id": "drawn-7"})  # fmt: skip
            assert drawn.status_code == 200
        judged = running.client.feedback("drawn-7", 7)
        assert judged.predicted == drawn.json()["label"] and judged.version == 1
    finally:
        running.close()
    records = [r for r in read_records(tmp_path / "log") if r["request_id"] == "drawn-7"]
    assert [r["kind"] for r in records] == ["prediction", "feedback"]
    assert (records[0]["method"], records[0]["status"]) == ("Draw", "OK")
    np.testing.assert_array_equal(decode_input(records[0])[0], np.asarray(drawn.json()["input"]))
    assert records[0]["labels"] == [drawn.json()["label"]]


def test_a_log_directory_that_became_unwritable_counts_records_failed(tmp_path: Path):
    directory = tmp_path / "log"
    log = PredictionLog(directory, flush_interval_s=3600)
    log.start()
    try:
        directory.rmdir()
        directory.write_text("not a directory any more")  # e.g. a volume unmounted and replaced
        for i in range(5):
            log.submit(1e9 + i, f"id-{i}", "Predict", 1, 0.001, "OK", None,
                       random_images(1, seed=i), np.full((1, 10), 0.1, np.float32))  # fmt: skip
        log.write_queued()
        counts = {m.labels["outcome"]: m.value for m in next(log.collect()).samples}
        assert counts == {"written": 0.0, "dropped": 0.0, "failed": 5.0}
        directory.unlink()
        directory.mkdir()  # back: the next records are written
        log.submit(2e9, "again", "Predict", 1, 0.001, "OK", None, random_images(1), None)
        log.write_queued()
    finally:
        log.close()
    assert [r["request_id"] for r in read_records(directory)] == ["again"]


def test_logs_tail_into_a_reader_that_stops_early_exits_quietly(tmp_path: Path):
    log = PredictionLog(tmp_path / "log", flush_interval_s=3600)
    log.start()
    for i in range(300):  # ~400 KB of JSON: more than a pipe buffers
        log.submit(1e9 + i, f"id-{i}", "Predict", 1, 0.001, "OK", None, random_images(1, seed=i),
                   np.full((1, 10), 0.1, np.float32))  # fmt: skip
    log.close()
    reader = subprocess.Popen(
        [sys.executable, "-m", "cli", "logs", "tail", str(tmp_path / "log"), "--json", "-n", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.read(100)  # what `head -c 100` takes, then it goes
    reader.stdout.close()
    stderr = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 141 and stderr == ""  # as coreutils: no message
