"""`digits train --sweep`: option errors in-process; one real sweep on a LocalCluster it owns."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cli.main import main
from registry import Registry
from tests.helpers.synthetic import write_synthetic_mnist

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sweep", "lr=1e-3", "--sweep-file", "x.yaml"], "give --sweep or --sweep-file"),
        (["--sweep", "lr"], "expected NAME=V1,V2"),
        (["--sweep", "registry_dir=/x"], "cannot sweep 'registry_dir'"),
        (["--sweep", "batch_size=64,0"], "trial 1 {'batch_size': '0'}: batch_size"),
    ],
)
def test_bad_sweeps_are_usage_errors(argv, message, capsys: pytest.CaptureFixture[str]):
    assert main(["train", *argv]) == 2
    assert message in capsys.readouterr().err


def test_sweep_file_random_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: random\nparameters: {lr: {min: 1.0e-4, max: 1.0e-2}}\n")
    assert main(["train", "--sweep-file", str(bad)]) == 2
    assert "needs a trial budget" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_sweep_on_its_own_local_cluster_leaves_no_process(tmp_path: Path):
    """The one-command form with PREFECT_API_URL set (reused, no server of its own): a 2-worker
    LocalCluster started for the run and gone when it ends; one version, trials on both."""
    from prefect.settings import PREFECT_API_URL

    digests = write_synthetic_mnist(tmp_path / "served")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(REPO),
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "method: random\ntrials: 4\nseed: 1\nparameters:\n"
        "  lr: {min: 1.0e-4, max: 1.0e-2, log: true}\n  batch_size: [32, 64]\n"
    )
    command = [sys.executable, "-m", "cli", "train", "--sweep-file", str(sweep), "--workers", "2",
               "--mirror", (tmp_path / "served").as_uri() + "/", "--epochs", "2",
               "--data-dir", str(tmp_path / "cache"), "--registry", str(tmp_path / "registry"),
               "--min-accuracy", "0", "--json"]  # fmt: skip
    command += [f"--file-sha256={name}={digest}" for name, digest in digests.items()]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen: dict[int, psutil.Process] = {}
    commands: list[str] = []
    while process.poll() is None:  # every process the run starts, to check none outlives it
        try:
            for child in psutil.Process(process.pid).children(recursive=True):
                if child.pid not in seen:
                    seen[child.pid] = child
                    with contextlib.suppress(psutil.Error):  # it may be gone already
                        commands.append(" ".join(child.cmdline()))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    result = json.loads(out)
    assert len(result["trials"]) == 4 and len({t["worker"] for t in result["trials"]}) == 2
    assert result["sweep"]["method"] == "random" and result["published"] is True
    assert [v.version for v in Registry(tmp_path / "registry").list_versions("digits")] == [1]
    _, alive = psutil.wait_procs(list(seen.values()), timeout=15)
    assert alive == [], [p.cmdline() for p in alive]
    assert len(seen) >= 2  # at least the two workers were seen
    assert not any("uvicorn" in command for command in commands)  # the given API was used
