"""Registry publishers in child processes (eight at once, or one killed before its commit)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small weights so that eight interpreters start and publish in a few seconds.
_PARAMS_CODE = """
import numpy as np
def small_params(seed):
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((64, 32)).astype(np.float32).T, "b1": np.full((32, 1), seed)}
"""

PUBLISHER = (
    _PARAMS_CODE
    + """
import sys
from registry import Registry
root, seed = sys.argv[1], int(sys.argv[2])
registry = Registry(root)
print("ready", flush=True)
sys.stdin.readline()  # start line: every process publishes at the same moment
print(registry.publish("digits", small_params(seed), {"seed": seed}).version, flush=True)
"""
)

CRASHING_PUBLISHER = (
    _PARAMS_CODE
    + """
import sys, time
from registry import Registry
def pause(staging):
    print(staging, flush=True)
    time.sleep(120)  # the test kills us here, between staging and rename
Registry(sys.argv[1]).publish("digits", small_params(99), {"seed": 99}, _before_commit=pause)
"""
)

_namespace: dict[str, Any] = {}
exec(_PARAMS_CODE, _namespace)  # the parent recomputes what each child published
small_params: Callable[[int], dict[str, np.ndarray]] = _namespace["small_params"]


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_published_by_seed(registry: Registry, versions_by_seed: dict[int, int]) -> None:
    for seed, version in versions_by_seed.items():
        loaded = registry.load("digits", version)
        assert loaded.manifest["seed"] == seed
        for key, array in small_params(seed).items():
            assert np.array_equal(loaded.params[key], array), (seed, key)
