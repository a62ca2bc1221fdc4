"""Server processes of the serving benchmark: `digits serve`, and MLServer in its own venv.

Imported by bench/serve.py (from the project's .venv); MLServer itself runs from a separate venv
so its pinned dependencies never touch ours. Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc

MLSERVER_VERSION = "1.7.1"
# uvloop 0.22 breaks MLServer 1.7's event-loop policy; the others are what the runtime imports.
_REQUIREMENTS = (f"mlserver=={MLSERVER_VERSION}", "uvloop==0.21.0", "safetensors", "numpy")
_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]
# ModelReady(name="digits") and a `ready: true` answer, as raw protobuf bytes: the bench process
# must not import a second `inference` protobuf module (tritonclient's) next to ours.
_MODEL_READY = "/inference.GRPCInferenceService/ModelReady"
_READY_REQUEST = b"\x0a\x06digits"
_READY_ANSWER = b"\x08\x01"


def ensure_venv(venv: Path, log: Path) -> Path:
    """Create `venv` with MLServer installed unless it already has the pinned version."""
    python = venv / "bin" / "python"
    if _installed_version(python) == MLSERVER_VERSION:
        return python
    print(f"installing MLServer {MLSERVER_VERSION} into {venv} (log: {log})", file=sys.stderr)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=out)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, *_REQUIREMENTS], check=True, stdout=out, stderr=out)
    if _installed_version(python) != MLSERVER_VERSION:
        raise RuntimeError(f"MLServer {MLSERVER_VERSION} did not install; see {log}")
    return python


def write_repository(run_dir: Path, weights: Path, grpc_port: int, http_port: int) -> Path:
    """Lay out MLServer's model repository: settings.json + digits/model-settings.json."""
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "digits").mkdir(parents=True)
    settings = json.loads((_HERE / "settings.json").read_text())
    settings.update(grpc_port=grpc_port, http_port=http_port, host="127.0.0.1")
    (run_dir / "settings.json").write_text(json.dumps(settings, indent=2))
    model = json.loads((_HERE / "model-settings.json").read_text())
    model["parameters"]["uri"] = str(weights.resolve())
    (run_dir / "digits" / "model-settings.json").write_text(json.dumps(model, indent=2))
    return run_dir


@contextmanager
def running_mlserver(
    venv: Path, run_dir: Path, grpc_port: int, env: dict[str, str], timeout_s: float = 120.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `mlserver start run_dir`, wait until model `digits` is ready, stop it on exit."""
    env = {**os.environ, **env, "PYTHONPATH": str(_HERE)}
    with (run_dir / "mlserver.log").open("wb") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "mlserver"), "start", str(run_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(process, f"127.0.0.1:{grpc_port}", timeout_s, run_dir / "mlserver.log")
            yield process
        finally:
            _stop(process)


@contextmanager
def running_digits(
    registry: Path,
    env: dict[str, str],
    batching: bool,
    log_dir: Path,
    log_name: str = "",
    http_port: int = 0,
    extra_args: Sequence[str] = (),
    metrics_port: int | None = None,
) -> Iterator[str]:
    """Run `digits serve` on a free loopback port; yields HOST:PORT once health says SERVING.

    `http_port` > 0 turns its HTTP/REST edge on, on that port (0: gRPC only, the default);
    `extra_args` are more `digits serve` flags; `metrics_port` fixes the /metrics port.
    """
    port, metrics_port = free_port(), metrics_port or free_port()
    command = [
        *(sys.executable, "-m", "cli", "serve", "--registry", str(registry)),
        *("--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)),
        "--batching" if batching else "--no-batching",
        *("--http-port", str(http_port)),
        *("--drain-delay", "0"),  # no load balancer to wait for between points
        *extra_args,
    ]
    log = log_dir / f"digits-serve-{log_name or 'batching-' + ('on' if batching else 'off')}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=_ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            _wait_serving(process, f"127.0.0.1:{port}", timeout_s=60.0, log=log)
            yield f"127.0.0.1:{port}"
        finally:
            _stop(process)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # SIGTERM: both servers drain and exit
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(process: subprocess.Popen[bytes], target: str, timeout_s: float, log: Path) -> None:
    """Block until MLServer answers ModelReady(digits) with ready."""
    with grpc.insecure_channel(target) as channel:
        model_ready = channel.unary_unary(_MODEL_READY)
        _poll(lambda: model_ready(_READY_REQUEST, timeout=1.0) == _READY_ANSWER,
              process, f"MLServer at {target}", "ready", timeout_s, log)  # fmt: skip


def _wait_serving(
    process: subprocess.Popen[bytes], target: str, timeout_s: float, log: Path
) -> None:
    """Block until grpc.health.v1 reports SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    serving = health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        _poll(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status == serving,
              process, f"server at {target}", "SERVING", timeout_s, log)  # fmt: skip


def _poll(
    probe: Callable[[], bool],
    process: subprocess.Popen[bytes],
    what: str,
    state: str,
    timeout_s: float,
    log: Path,
) -> None:
    """Call probe until it is true (RPC errors count as not yet); fail early if process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see {log}")
        try:
            if probe():
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not {state} after {timeout_s:.0f} s; see {log}")


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import mlserver; print(mlserver.__version__)"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None
