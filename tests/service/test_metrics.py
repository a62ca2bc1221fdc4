"""ServiceMetrics: the hot-path series expose what prometheus_client did, exactly, under threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.observability.metrics import ServiceMetrics

OK, INVALID = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT
LATENCY = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BATCH = tuple(float(2**i) for i in range(14))


class Reference:
    """The metrics as plain prometheus_client objects: what /metrics showed before, the oracle."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "digits_requests", "RPCs handled, by method and status code", ["method", "code"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "digits_request_latency_seconds", "RPC handling time, by method", ["method"],
            buckets=LATENCY, registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "digits_batch_rows", "Rows per forward pass (after dynamic batching)",
            buckets=BATCH, registry=r,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "digits_batch_requests", "Requests coalesced into one forward pass",
            buckets=BATCH, registry=r,
        )  # fmt: skip
        self.queue_delay = Histogram(
            "digits_queue_delay_seconds", "Time a request waited in the batcher queue",
            buckets=LATENCY, registry=r,
        )  # fmt: skip
        self.http_requests = Counter(
            "digits_http_requests", "HTTP requests handled, by method and HTTP status",
            ["method", "code"], registry=r,
        )  # fmt: skip
        self.http_latency = Histogram(
            "digits_http_request_latency_seconds", "HTTP request handling time, by method",
            ["method"], buckets=LATENCY, registry=r,
        )  # fmt: skip
        Gauge(
            "digits_model_info", "1 for the model version served by default", ["name", "version"],
            registry=r,
        )  # fmt: skip
        Gauge("digits_model_version", "Registry version served by default (0 = none)", registry=r)
        Counter("digits_model_reloads", "Successful model swaps", registry=r)
        Counter(
            "digits_model_reload_failures", "New versions refused (verification or load failed)",
            registry=r,
        )  # fmt: skip
        Gauge(
            "digits_registry_reachable",
            "1 while the last registry poll reached the store, 0 while it cannot (the last "
            "verified model keeps serving)", registry=r,
        ).set(1)  # fmt: skip

    def observe_request(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.requests.labels(method, code.name).inc()
        self.latency.labels(method).observe(seconds)

    def observe_http(self, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, str(status)).inc()
        self.http_latency.labels(method).observe(seconds)


def _text(registry: CollectorRegistry) -> list[str]:
    """Exposition lines without `_created` (its timestamps differ; the hot series dropped it)
    and without prometheus_client's own process_* series (CPU time moves between scrapes)."""
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if "_created" not in line and "process_" not in line
    ]


def _samples(scrape: str, name: str, **labels: str) -> dict[str, float]:
    """Samples of one metric family with these labels, keyed by suffix (and `le` for buckets)."""
    for family in text_string_to_metric_families(scrape):
        if family.name == name:
            found = {}
            for sample in family.samples:
                le = sample.labels.pop("le", None)
                if sample.labels == labels:
                    key = sample.name.removeprefix(name)
                    found[f"{key}{{le={le}}}" if le else key] = sample.value
            return found
    raise AssertionError(f"no family {name}")


def _scrape(metrics: ServiceMetrics) -> str:
    return metrics.exposition().decode()


def test_exposition_equals_prometheus_client() -> None:
    # On a bound (`le` includes it), beside one, below the first, past the last, negative, infinite.
    seconds = [0.0001, 0.00010000001, 0.001, 2.5, 2.6, 0.0, -1.0, 1e-9, 0.3, float("inf")]
    counts = [0, 1, 2, 3, 4, 5, 8191, 8192, 8193, 10**6]  # both sides of the lookup table
    ours, reference = ServiceMetrics(), Reference()
    for metrics in (ours, reference):
        for i, value in enumerate(seconds):
            metrics.observe_request(
                "Predict" if i % 3 else "ModelInfer", OK if i % 4 else INVALID, value
            )
            metrics.observe_http("ModelInfer" if i % 2 else "Draw", 200 if i % 3 else 413, value)
    for rows, requests in zip(counts, reversed(counts), strict=True):
        ours.observe_batch(rows, requests)
        reference.batch_rows.observe(rows)
        reference.batch_requests.observe(requests)
    for value in seconds:
        ours.observe_queue_delay(value)
        reference.queue_delay.observe(value)
    assert _text(ours.registry) == _text(reference.registry)


def test_fresh_metrics_equal_prometheus_client() -> None:
    # Unlabelled histograms show zeroes from the start; labelled ones only HELP and TYPE.
    assert _text(ServiceMetrics().registry) == _text(Reference().registry)


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    metrics = ServiceMetrics()
    for value in (0.001, 0.001, 0.0011, 3.0):
        metrics.observe_request("Predict", OK, value)
    got = _samples(_scrape(metrics), "digits_request_latency_seconds", method="Predict")
    assert got["_bucket{le=0.0005}"] == 0
    assert got["_bucket{le=0.001}"] == 2
    assert got["_bucket{le=0.0025}"] == 3
    assert got["_bucket{le=2.5}"] == 3
    assert got["_bucket{le=+Inf}"] == got["_count"] == 4
    assert got["_sum"] == pytest.approx(3.0031)


def test_batch_sizes_on_and_between_bounds() -> None:
    metrics = ServiceMetrics()
    for rows in (1, 2, 3, 8192, 8193):
        metrics.observe_batch(rows, 1)
    rows = _samples(_scrape(metrics), "digits_batch_rows")
    assert [rows[f"_bucket{{le={le}}}"] for le in ("1.0", "2.0", "4.0", "8192.0", "+Inf")] == [
        1, 2, 3, 4, 5,
    ]  # fmt: skip
    assert rows["_count"] == 5 and rows["_sum"] == 16391
    requests = _samples(_scrape(metrics), "digits_batch_requests")
    assert requests["_bucket{le=1.0}"] == requests["_count"] == 5 and requests["_sum"] == 5


def test_label_sets_are_kept_apart() -> None:
    metrics = ServiceMetrics()
    metrics.observe_request("Predict", OK, 0.002)
    metrics.observe_request("Predict", OK, 0.002)
    metrics.observe_request("Predict", INVALID, 0.0001)
    metrics.observe_request("ModelInfer", OK, 0.5)
    total = "digits_requests"
    assert _samples(_scrape(metrics), total, method="Predict", code="OK") == {"_total": 2}
    assert _samples(_scrape(metrics), total, method="Predict", code="INVALID_ARGUMENT") == {
        "_total": 1
    }
    assert _samples(_scrape(metrics), total, method="ModelInfer", code="OK") == {"_total": 1}
    predict = _samples(_scrape(metrics), "digits_request_latency_seconds", method="Predict")
    infer = _samples(_scrape(metrics), "digits_request_latency_seconds", method="ModelInfer")
    assert predict["_count"] == 3 and predict["_bucket{le=0.0001}"] == 1
    assert infer["_count"] == 1 and infer["_bucket{le=0.25}"] == 0 and infer["_sum"] == 0.5


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Make the interpreter switch threads every microsecond, so races show up in a short test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_threads_lose_nothing_and_scrapes_are_consistent() -> None:
    metrics, writers, n = ServiceMetrics(), 4, 5_000
    start, done = threading.Barrier(writers + 1), threading.Event()
    problems: list[str] = []
    scrapes: list[int] = []

    def write() -> None:
        start.wait()
        for _ in range(n):
            metrics.observe_request("Predict", OK, 0.5)  # 0.5 and 2 sum exactly in floats
            metrics.observe_batch(2, 1)
            metrics.observe_queue_delay(0.5)

    def check() -> None:
        text = metrics.exposition().decode()  # one scrape, one snapshot
        requests = _samples(text, "digits_requests", method="Predict", code="OK")
        latency = _samples(text, "digits_request_latency_seconds", method="Predict")
        rows = _samples(text, "digits_batch_rows")
        if not requests.get("_total"):  # none counted yet (the label sets may be half made)
            return
        if not latency["_count"] == latency["_bucket{le=+Inf}"] == requests["_total"]:
            problems.append(f"count, +Inf and requests disagree: {latency} {requests}")
        if latency["_sum"] != 0.5 * latency["_count"] or rows["_sum"] != 2 * rows["_count"]:
            problems.append(f"sum does not match count: {latency} {rows}")

    def scrape() -> None:
        start.wait()
        while not done.is_set():
            try:
                check()
            except Exception as err:  # a thread's exception would not fail the test by itself
                problems.append(repr(err))
            scrapes.append(1)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    scraper = threading.Thread(target=scrape)
    for thread in [*threads, scraper]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    scraper.join()
    assert problems == [] and scrapes
    total = writers * n
    assert _samples(_scrape(metrics), "digits_requests", method="Predict", code="OK") == {
        "_total": total
    }
    latency = _samples(_scrape(metrics), "digits_request_latency_seconds", method="Predict")
    assert latency["_bucket{le=0.5}"] == latency["_count"] == total
    assert latency["_bucket{le=0.25}"] == 0 and latency["_sum"] == 0.5 * total
    rows = _samples(_scrape(metrics), "digits_batch_rows")
    assert rows["_bucket{le=2.0}"] == rows["_count"] == total and rows["_sum"] == 2 * total
    delay = _samples(_scrape(metrics), "digits_queue_delay_seconds")
    assert delay["_count"] == total and delay["_sum"] == 0.5 * total
