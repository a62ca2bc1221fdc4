"""HTTP load points with wrk (the C HTTP/1.1 benchmarking tool, Debian package `wrk`).

wrk keeps `connections` keep-alive connections each with one request in flight (closed loop),
on one thread, and reports requests/s and latency percentiles. The request body is read from a
file by a generated Lua script, so binary bodies (the V2 binary tensor data extension) work too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["ensure_wrk", "point"]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ensure_wrk() -> str:
    """Path of wrk; installs Debian's package when missing and running as root."""
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True)
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    return found


def point(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    duration: float,
    connections: int = 32,
) -> dict[str, Any]:
    """POST `body` to `url` from `connections` connections for `duration` s; wrk's figures."""
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(body)
        lines = [
            'wrk.method = "POST"',
            f'local f = assert(io.open("{body_file}", "rb"))',
            "wrk.body = f:read('*a')",
            "f:close()",
            *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
        ]
        script = Path(tmp) / "post.lua"
        script.write_text("\n".join(lines) + "\n")
        seconds = max(1, round(duration))
        command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
        done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return _parse(done.stdout)


def _parse(text: str) -> dict[str, Any]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if rate is None or total is None:
        raise RuntimeError(f"unexpected wrk output: {text!r}")
    out: dict[str, Any] = {"requests_per_s": round(float(rate.group(1)), 1)}
    for percent in ("50", "90", "99"):
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
        if found:
            out[f"p{percent}_ms"] = round(float(found.group(1)) * _UNITS[found.group(2)], 3)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    out["requests"] = int(total.group(1))
    out["errors"] = errors
    return out
