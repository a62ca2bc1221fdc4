"""A real HTTP mirror on 127.0.0.1 serving files from a directory, with scripted failures."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class MirrorServer:
    """Serves ``root/<name>`` at ``/<prefix>/<name>``; ``script`` queues per-name behaviours.

    A behaviour is one of "ok", "404", "500", "corrupt" (the right length, wrong bytes),
    "truncate" (announces the full length, sends half, closes the connection), "stall"
    (sends the headers, then nothing until the client leaves) or "drip" (announces the full
    length, then sends one byte every ``drip_interval_s``); each request pops the next one for
    its file, "ok" once the queue is empty.
    """

    def __init__(self, root: Path, prefix: str = "mnist", drip_interval_s: float = 0.5) -> None:
        self.root = root
        self.prefix = prefix
        self.drip_interval_s = drip_interval_s
        self._stopping = threading.Event()  # releases stalled and dripping handlers on stop()
        self.requests: Counter[str] = Counter()
        self._script: defaultdict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval keeps shutdown() (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{self.prefix}/"

    def script(self, name: str, *behaviours: str) -> None:
        with self._lock:
            self._script[name].extend(behaviours)

    def start(self) -> MirrorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next_behaviour(self, name: str) -> str:
        with self._lock:
            self.requests[name] += 1
            queue = self._script[name]
            return queue.popleft() if queue else "ok"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                prefix, _, name = self.path.lstrip("/").partition("/")
                behaviour = mirror._next_behaviour(name)
                path = mirror.root / name
                if prefix != mirror.prefix or behaviour == "404" or not path.is_file():
                    self.send_error(404)
                    return
                if behaviour == "500":
                    self.send_error(500)
                    return
                body = path.read_bytes()
                if behaviour == "corrupt":
                    body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if behaviour == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                if behaviour in ("stall", "drip"):
                    self._trickle(body if behaviour == "drip" else b"")
                    return
                self.wfile.write(body)

            def _trickle(self, body: bytes) -> None:
                """Send ``body`` one byte per interval (or nothing) until the client goes."""
                self.wfile.flush()
                self.close_connection = True
                sent = 0
                while not mirror._stopping.wait(mirror.drip_interval_s):
                    if sent >= len(body):
                        if not body:
                            continue  # "stall": headers only, keep the connection open
                        return
                    try:
                        self.wfile.write(body[sent : sent + 1])
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up: exactly what a slow mirror should see
                    sent += 1

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        return Handler
