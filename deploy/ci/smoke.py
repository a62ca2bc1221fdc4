"""Container smoke test helper: publish a tiny test registry, then check a served prediction.

scripts/container_ci.sh runs it with the host's virtual environment: ``publish`` before the
serve image starts (the registry is mounted into it), ``check`` once the image's own health
check reports SERVING, then ``promote`` and ``check --wait`` to see the running container
hot-reload the new production version. The expected answer is computed here with core's MLP
from the same registry, so a round trip through the container must reproduce it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from core import MLP
from core.idx import encode_idx
from registry import DEFAULT_ALIAS, DEFAULT_MODEL_NAME, Registry

_SAMPLES = 8
_TOLERANCE = 1e-5


def sample_images(count: int = _SAMPLES) -> np.ndarray:
    """Deterministic uint8 images (count, 28, 28): blobs of ink at different places."""
    rng = np.random.default_rng(7)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for index in range(count):
        row, col = rng.integers(4, 20, size=2)
        images[index, row : row + 6, col : col + 4] = 255
    return images


def publish_production(registry: Path, seed: int) -> int:
    """Publish an untrained model (weights from `seed`) and point `production` at it."""
    model = MLP(layer_sizes=(784, 128, 40, 10), seed=seed)
    params = {key: np.ascontiguousarray(value) for key, value in model.params.items()}
    manifest = {"layer_sizes": [784, 128, 40, 10], "loss": "cross_entropy", "metrics": {}}
    store = Registry(registry)
    version = store.publish(DEFAULT_MODEL_NAME, params, manifest).version
    store.set_alias(DEFAULT_MODEL_NAME, DEFAULT_ALIAS, version)
    print(f"published {DEFAULT_MODEL_NAME} v{version} to {registry} as {DEFAULT_ALIAS}")
    return version


def publish(registry: Path, images_path: Path) -> int:
    """The first version, and the test images as an IDX file for `digits predict`."""
    publish_production(registry, seed=0)
    images_path.write_bytes(encode_idx(sample_images()))
    return 0


def served_version(target: str) -> int:
    from service.client import DigitsClient

    with DigitsClient(target, timeout=10.0) as client:
        return int(client.predict(sample_images()[:1]).version)


def check(registry: Path, target: str, wait_s: float = 0.0) -> int:
    """Predict the test images through the server and compare with the local forward pass.

    With `wait_s`, first wait that long for the server to serve the registry's production version
    (hot reload after `promote`).
    """
    from service.client import DigitsClient

    loaded = Registry(registry).load(DEFAULT_MODEL_NAME)
    deadline = time.monotonic() + wait_s
    while served_version(target) != loaded.version and time.monotonic() < deadline:
        time.sleep(0.2)
    images = sample_images()
    expected = MLP.from_params(loaded.params).predict_proba(images.reshape(len(images), -1) / 255.0)
    with DigitsClient(target, timeout=10.0) as client:
        answer = client.predict(images)
    error = float(np.max(np.abs(np.asarray(answer.probabilities) - expected)))
    summary = {
        "target": target,
        "served_version": answer.version,
        "expected_version": loaded.version,
        "labels": [int(label) for label in answer.labels],
        "max_abs_error": error,
    }
    print(json.dumps(summary))
    if answer.version != loaded.version:
        print(f"smoke: served version {answer.version}, expected {loaded.version}", file=sys.stderr)
        return 1
    if not error <= _TOLERANCE:
        print(f"smoke: probabilities differ by {error:g} (> {_TOLERANCE:g})", file=sys.stderr)
        return 1
    if not np.array_equal(np.asarray(answer.labels), expected.argmax(axis=1)):
        print("smoke: served labels differ from the local argmax", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    publish_parser = commands.add_parser("publish", help="create the test registry")
    publish_parser.add_argument("--registry", type=Path, required=True)
    publish_parser.add_argument("--images", type=Path, required=True, help="IDX file to write")
    promote_parser = commands.add_parser("promote", help="publish a new production version")
    promote_parser.add_argument("--registry", type=Path, required=True)
    check_parser = commands.add_parser("check", help="compare a served prediction")
    check_parser.add_argument("--registry", type=Path, required=True)
    check_parser.add_argument("--target", required=True, metavar="HOST:PORT")
    check_parser.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="wait for the production version"
    )
    args = parser.parse_args(argv)
    if args.command == "publish":
        return publish(args.registry, args.images)
    if args.command == "promote":
        publish_production(args.registry, seed=1)
        return 0
    return check(args.registry, args.target, args.wait)


if __name__ == "__main__":
    sys.exit(main())
