"""`digits train` and `digits schedule`: option handling in-process, one real end-to-end run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from core.mlp import MLP
from registry import Registry

REPO = Path(__file__).resolve().parents[2]
DIGITS = Path(sys.executable).with_name("digits")


def test_bad_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]):
    assert main(["train", "--epochs", "0", "--lr", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("digits train: error: invalid training settings: --epochs:")
    assert "--lr: Input should be greater than 0" in err and "\n" not in err


def test_if_empty_skips_when_a_version_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    Registry(tmp_path).publish("digits", dict(MLP().params), {"loss": "cross_entropy"})
    assert main(["train", "--registry", str(tmp_path), "--if-empty", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped"] is True and "v1" in out["reason"]


def test_schedule_rejects_a_bad_cron(capsys: pytest.CaptureFixture[str]):
    assert main(["schedule", "--cron", "every day"]) == 1
    assert "invalid schedule 'every day'" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_not_published_is_exit_3_with_json_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    empty_cache = tmp_path / "cache"
    code = main(["train", "--offline", "--data-dir", str(empty_cache),
                 "--registry", str(tmp_path / "registry"), "--json"])  # fmt: skip
    assert code == 3
    captured = capsys.readouterr()
    verdict = json.loads(captured.out)
    assert verdict["published"] is False
    assert verdict["reason"].startswith(f"offline mode: MNIST is not in {empty_cache}")
    assert verdict["reason"].count("missing (looked for") == 4
    assert captured.err.strip().endswith(f"digits train: error: not published: {verdict['reason']}")
    assert not (tmp_path / "registry").exists()


@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("MNIST_DIR"), reason="MNIST_DIR (real MNIST files) not set")
def test_digits_train_end_to_end(tmp_path: Path, mirror_factory, prefect_harness):
    """The real command: local mirrors (first one dead), real MNIST, a real Prefect server.

    The command talks to the session's test server: a fresh ephemeral server per process
    would migrate a new database first, which takes a minute on a busy machine.
    """
    from prefect.settings import PREFECT_API_URL

    empty = tmp_path / "empty"
    empty.mkdir()
    dead, good = mirror_factory(empty), mirror_factory(Path(os.environ["MNIST_DIR"]))
    registry, cache = tmp_path / "registry", tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")  # never the user's profile or database
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    command = [
        str(DIGITS), "train", "--mirror", dead.url, "--mirror", good.url,
        "--data-dir", str(cache), "--registry", str(registry),
        "--epochs", "1", "--train-limit", "10000", "--min-accuracy", "0.8", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert (summary["model"], summary["version"], summary["promoted"]) == ("digits", 1, True)
    assert summary["published"] is True
    assert summary["metrics"]["accuracy"] > 0.8
    assert "epoch 1/1" in done.stderr  # per-epoch metrics went through Prefect's run logger
    assert [p.name for p in cache.iterdir()] == ["downloaded"]  # the pipeline's own sub-directory
    assert sorted(p.name for p in (cache / "downloaded").iterdir()) == sorted(good.requests)
    loaded = Registry(registry).load("digits", "production")
    assert loaded.version == 1 and loaded.manifest["dataset"]["test_samples"] == 10000
    assert {"training_curves.png", "confusion_matrix.png"} <= set(loaded.manifest["files"])
    assert loaded.params["W1"].shape == (128, 784) and np.isfinite(loaded.params["W1"]).all()

    again = subprocess.run(
        [str(DIGITS), "train", "--registry", str(registry), "--if-empty"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0 and again.stdout.startswith("skipped: digits already has v1")
    assert sum(good.requests.values()) == 4  # nothing downloaded again
