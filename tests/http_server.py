"""A real HTTP file server on loopback, with fault injection, for shard-reading tests.

``FileServer`` serves one directory over HTTP/1.1 (GET and HEAD) from a background thread pool,
honours single ``Range: bytes=...`` requests with ``206 Partial Content`` (``416`` when
unsatisfiable), and records every request it sees. Knobs let a test make the server misbehave:

    server.set_latency(0.2)              # sleep before answering every request
    server.fail_next(2, status=503)      # the next 2 requests answer 503 (body-less JSON error)
    server.serve_endless("/x.tar", prefix) # GET /x.tar answers ``prefix`` then bytes without end
                                         # (no Content-Length), until the client hangs up
    server.drop_next(1, after_bytes=100) # the next response is cut after 100 body bytes:
                                         # full headers (Content-Length of the whole body),
                                         # then the connection is closed mid-body
    server.trickle_next(1, interval=1.0) # the next GET sends its body one byte per interval
    server.trickle_next(1, interval=1.0, headers=True)  # ... its headers too
    server.set_pace(65536, 0.02)         # every GET body goes out in 64 KiB pieces, 20 ms
                                         # apart (a slow server or link; 0 turns it off)
    server.stall_next(1, after_bytes=10) # the next GET sends headers and 10 body bytes, then
                                         # nothing (until reset/stop, at most 120 s)
    server.requests                      # [LoggedRequest(method, path, range), ...]
    server.count("GET", "/a.tar")        # how many matching requests were logged
    server.reset()                       # clear the log and every knob

Knobs are consumed in the order fail -> drop -> trickle -> stall: a request that is failed does
not use up a drop, and so on.
Latency applies to every request, failed or not.
"""

from __future__ import annotations

import email.utils
import json
import posixpath
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["FileServer", "LoggedRequest", "serve_directory"]

_CHUNK = 64 * 1024
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class LoggedRequest(NamedTuple):
    method: str
    path: str
    range: str | None


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Return the inclusive byte span of a single-range header, or None when unsatisfiable.

    Raises ValueError for headers we do not understand (multi-range, other units); the caller
    then ignores the header and answers 200, as RFC 9110 allows.
    """
    m = _RANGE_RE.match(header)
    if m is None:
        raise ValueError(header)
    first, last = m.group(1), m.group(2)
    if not first and not last:
        raise ValueError(header)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return None
        return max(0, size - n), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if start >= size or (last and int(last) < start):
        return None
    return start, end


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        owner = self.server.owner
        range_header = self.headers.get("Range")
        url_path = urllib.parse.urlsplit(self.path).path
        fail_status, drop_after, slow = owner._on_request(
            LoggedRequest(self.command, url_path, range_header)
        )
        if fail_status is not None:
            self._send_error(fail_status, "injected failure", body=body)
            return

        endless = owner._endless.get(url_path)
        if endless is not None:
            self._serve_endless(endless, body=body)
            return

        target = owner._resolve(url_path)
        if target is None:
            self._send_error(404, "not found", body=body)
            return

        stat = target.stat()
        size = stat.st_size
        status, start, end = 200, 0, size - 1
        if range_header is not None:
            try:
                span = _parse_range(range_header, size)
            except ValueError:
                span = (0, size - 1)  # not understood: ignore the header
            else:
                if span is None:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            start, end = span
        length = max(0, end - start + 1)

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{stat.st_mtime_ns:x}-{size:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if slow is not None and slow[0] == "headers":
            head = b"".join(getattr(self, "_headers_buffer", [])) + b"\r\n"
            self._headers_buffer = []
            self._trickle(head, slow[1])
        else:
            self.end_headers()
        if not body or length == 0:
            return
        if slow is not None:
            with target.open("rb") as f:
                f.seek(start)
                data = f.read(length)
            if slow[0] == "stall":
                self.wfile.write(data[: int(slow[1])])
                self.wfile.flush()
                owner._released.wait(120)
                self._drop_connection()
                return
            self._trickle(data, slow[1])
            return

        budget = length if drop_after is None else min(length, drop_after)
        piece, pause = owner._pace
        with target.open("rb") as f:
            f.seek(start)
            sent = 0
            while sent < budget:
                chunk = f.read(min(piece or _CHUNK, budget - sent))
                if not chunk:
                    break
                if pause and sent:
                    self.wfile.flush()
                    if owner._released.wait(pause):
                        break
                self.wfile.write(chunk)
                sent += len(chunk)
        if drop_after is not None and budget < length:
            self._drop_connection()

    def _trickle(self, data: bytes, interval: float) -> None:
        """Send ``data`` one byte per ``interval`` seconds (stops when the client goes away)."""
        for i in range(len(data)):
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:
                return
            if self.server.owner._released.wait(interval):
                return

    def _serve_endless(self, prefix: bytes, *, body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if not body:
            return
        filler = b"A" * _CHUNK
        try:
            self.wfile.write(prefix)
            while not self.server.owner._stopping.is_set():
                self.wfile.write(filler)
        except OSError:  # the client hung up: the point of the exercise
            pass

    def _drop_connection(self) -> None:
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_error(self, status: int, message: str, *, body: bool) -> None:
        payload = json.dumps({"error": message, "status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-response (what the deadline, size-bound and stop-early
        tests do on purpose) is not an error of the server: say nothing. Anything else still
        prints its traceback, as socketserver does."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FileServer:
    """Serves ``root`` on ``127.0.0.1:<free port>``; see the module docstring for the knobs."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self._lock = threading.Lock()
        self._requests: list[LoggedRequest] = []
        self._latency = 0.0
        self._pace: tuple[int, float] = (0, 0.0)
        self._fail_left = 0
        self._fail_status = 503
        self._drop_left = 0
        self._drop_after = 0
        self._slow: list[tuple[str, float]] = []
        self._released = threading.Event()
        self._endless: dict[str, bytes] = {}
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FileServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, name: str) -> str:
        """URL of ``root / name``."""
        return f"{self.url}/{urllib.parse.quote(name.lstrip('/'))}"

    # -- knobs -------------------------------------------------------------------------------
    def set_latency(self, seconds: float) -> None:
        """Sleep ``seconds`` before answering each request (0 turns it off)."""
        with self._lock:
            self._latency = float(seconds)

    def set_pace(self, piece: int, pause: float) -> None:
        """Send every GET body in pieces of ``piece`` bytes, ``pause`` seconds apart (0 off)."""
        with self._lock:
            self._pace = (int(piece), float(pause))

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next ``n`` requests with ``status`` instead of the file."""
        with self._lock:
            self._fail_left, self._fail_status = n, status

    def drop_next(self, n: int = 1, after_bytes: int = 0) -> None:
        """Cut the next ``n`` responses after ``after_bytes`` body bytes and close the socket."""
        with self._lock:
            self._drop_left, self._drop_after = n, after_bytes

    def trickle_next(self, n: int = 1, interval: float = 1.0, *, headers: bool = False) -> None:
        """Send the next ``n`` GET bodies (with ``headers``: whole responses) one byte per
        ``interval`` seconds."""
        with self._lock:
            self._slow = [("headers" if headers else "body", interval)] * n

    def stall_next(self, n: int = 1, after_bytes: int = 0) -> None:
        """Send headers and ``after_bytes`` body bytes of the next ``n`` GETs, then nothing
        until :meth:`reset` or :meth:`stop` (at most 120 s), then close the connection."""
        with self._lock:
            self._slow = [("stall", float(after_bytes))] * n

    def serve_endless(self, url_path: str, prefix: bytes = b"") -> None:
        """Answer GET ``url_path`` with ``prefix`` and then filler bytes that never end."""
        with self._lock:
            self._endless[url_path] = prefix

    def reset(self) -> None:
        """Clear the request log and every knob (and release stalled and trickled responses)."""
        with self._lock:
            self._requests.clear()
            self._latency = 0.0
            self._pace = (0, 0.0)
            self._fail_left = self._drop_left = 0
            self._slow = []
            self._endless.clear()
        self._released.set()
        self._released = threading.Event()

    # -- request log -------------------------------------------------------------------------
    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of every request seen so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        )

    # -- used by the handler -----------------------------------------------------------------
    def _on_request(
        self, req: LoggedRequest
    ) -> tuple[int | None, int | None, tuple[str, float] | None]:
        with self._lock:
            self._requests.append(req)
            latency = self._latency
            fail: int | None = None
            drop: int | None = None
            slow: tuple[str, float] | None = None
            if self._fail_left > 0:
                self._fail_left -= 1
                fail = self._fail_status
            elif self._drop_left > 0 and req.method == "GET":
                self._drop_left -= 1
                drop = self._drop_after
            elif self._slow and req.method == "GET":
                slow = self._slow.pop()
        if latency > 0:
            time.sleep(latency)
        return fail, drop, slow

    def _resolve(self, url_path: str) -> Path | None:
        rel = posixpath.normpath(urllib.parse.unquote(url_path)).lstrip("/")
        if rel in ("", ".") or rel.startswith(".."):
            return None
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return None
        return target

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_directory(root: Path | str) -> Iterator[FileServer]:
    """Run a ``FileServer`` for ``root`` for the duration of the ``with`` block."""
    with FileServer(root) as server:
        yield server
