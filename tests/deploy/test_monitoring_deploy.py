"""deploy/prometheus and deploy/grafana: wired into compose, rules valid and unit-tested with
promtool, every dashboard query on a metric the server exports, and a real Prometheus scraping
a real server with the shipped scrape config."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.profile import profile
from registry import Registry
from service.client import ServiceError
from service.serving.model import Predictor
from tests.helpers.deploy_files import REPO, compose
from tests.helpers.servers import Running, start
from tests.helpers.toy_models import MODEL, random_images, toy_params

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "digits.json"
NO_PROMETHEUS = "Debian's prometheus package is not installed (.ci/run installs it)"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host source of a service's short-form volumes."""
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_compose_prometheus_scrapes_the_model_servers_metrics_port() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = Path(config_flag.split("=", 1)[1])
    host_dir = mounts(prometheus)[str(config_path.parent)]
    assert (REPO / host_dir).resolve() == PROMETHEUS_DIR
    config = load(PROMETHEUS_DIR / config_path.name)
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]  # fmt: skip
    metrics_port = services["model-server"]["environment"]["DIGITS_METRICS_PORT"]
    assert targets == [f"model-server:{metrics_port}"]
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file()


def test_compose_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    services = compose()["services"]
    grafana = mounts(services["grafana"])
    assert (REPO / grafana["/etc/grafana/provisioning"]).resolve() == GRAFANA_DIR / "provisioning"
    datasource = load(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    [source] = datasource["datasources"]
    listen = next(a for a in services["prometheus"]["command"] if "--web.listen-address" in a)
    assert source["url"] == f"http://prometheus:{listen.rsplit(':', 1)[1]}"
    provider = load(GRAFANA_DIR / "provisioning" / "dashboards" / "digits.yml")["providers"][0]
    dashboards_dir = provider["options"]["path"]
    assert (REPO / grafana[dashboards_dir]).resolve() == DASHBOARD.parent
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert {p["datasource"]["uid"] for p in panels} == {source["uid"]}


@pytest.mark.skipif(shutil.which("promtool") is None, reason=NO_PROMETHEUS)
@pytest.mark.parametrize(
    "check",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_promtool_accepts_the_config_and_the_rules_pass_their_unit_tests(check: list[str]):
    result = subprocess.run(["promtool", *check], cwd=PROMETHEUS_DIR, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_drift_alert_threshold_is_the_code_s() -> None:
    from core.profile import DRIFT_ALERT_PSI

    rules = {r["alert"]: r for g in load(PROMETHEUS_DIR / "alerts.yml")["groups"]
             for r in g["rules"]}  # fmt: skip
    assert rules["DigitsInputDrift"]["expr"].strip().endswith(f"> {DRIFT_ALERT_PSI}")


@pytest.fixture
def busy_server(tmp_path: Path) -> Iterator[Running]:
    """A server with every monitored series present: answers, failures, feedback, a log."""
    registry = Registry(tmp_path / "models")
    params = toy_params(1)
    images = random_images(300, seed=9).reshape(300, 784)
    reference = profile(images, Predictor(params).predict_proba(images))
    manifest = {"metrics": {"accuracy": 0.9}, "profile": reference}
    registry.publish(MODEL, params, manifest)
    running = start(registry, metrics_port=0, prediction_log=tmp_path / "log",
                    drift_min_images=1, drift_fold_interval_s=0)  # fmt: skip
    try:
        for i in range(5):
            answer = running.client.predict(random_images(2, seed=i))
            running.client.feedback(answer.request_id, int(answer.labels[0]))
        with pytest.raises(ServiceError):  # NOT_FOUND: an error series for the dashboard
            running.client.predict(random_images(1), version=42)
        yield running
    finally:
        running.close()


@pytest.mark.integration
def test_every_dashboard_query_names_a_metric_the_server_exports(busy_server: Running) -> None:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{busy_server.server.metrics_port}/metrics", timeout=10
    ) as response:
        exposition = response.read().decode()
    exported = set(re.findall(r"^(digits_\w+)", exposition, flags=re.MULTILINE))
    queries = dashboard_queries()
    assert len(queries) >= 12
    for query in queries:
        names = set(re.findall(r"\bdigits_\w+", query))
        assert names, f"query names no digits metric: {query}"
        assert names <= exported, f"{query}: {names - exported} not exported"


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("prometheus") is None, reason=NO_PROMETHEUS)
def test_a_real_prometheus_scrapes_a_real_server(busy_server: Running, tmp_path: Path) -> None:
    config = load(PROMETHEUS_DIR / "prometheus.yml")
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    metrics_target = f"127.0.0.1:{busy_server.server.metrics_port}"
    config["scrape_configs"][0]["static_configs"] = [{"targets": [metrics_target]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        api = f"http://127.0.0.1:{port}/api/v1"
        target = poll(lambda: up_target(api, metrics_target), timeout_s=60, process=process)
        assert target["labels"]["job"] == "digits"
        result = poll(lambda: query(api, 'digits_requests_total{method="Predict"}'), 30, process)
        by_code = {r["metric"]["code"]: float(r["value"][1]) for r in result}
        assert by_code == {"OK": 5.0, "NOT_FOUND": 1.0}
        live = poll(lambda: query(api, "digits_live_accuracy"), 30, process)
        assert [float(r["value"][1]) for r in live] == [1.0]
        rules = poll(lambda: evaluated_rules(api), 30, process)
        assert {r["name"] for r in rules} >= {"DigitsInputDrift", "DigitsNoModelLoaded"}
        assert all(r["health"] == "ok" for r in rules), rules
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def query(api: str, promql: str) -> list[dict[str, Any]] | None:
    found = get(f"{api}/query?query={urllib.parse.quote(promql)}")["data"]["result"]
    return found or None


def evaluated_rules(api: str) -> list[dict[str, Any]] | None:
    """The loaded rules once every one has been evaluated at least once."""
    rules = [r for g in get(f"{api}/rules")["data"]["groups"] for r in g["rules"]]
    return rules if rules and all(r["health"] != "unknown" for r in rules) else None


def up_target(api: str, address: str) -> dict[str, Any] | None:
    for target in get(f"{api}/targets")["data"]["activeTargets"]:
        if target["labels"].get("instance") == address and target["health"] == "up":
            return dict(target)
    return None


def poll(probe: Any, timeout_s: float, process: subprocess.Popen[bytes]) -> Any:
    """probe() until it returns something (Prometheus answering and the data in)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "prometheus exited; see prometheus.log"
        try:
            found = probe()
        except OSError:  # not listening yet
            found = None
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"nothing from Prometheus within {timeout_s} s")
