"""A loopback TCP proxy for plain HTTP/1.1 that logs requests and can cut a response short.

Put it in front of a real server (moto, rclone) to see exactly which requests a client sent
(request line and Range header) and to drop a connection in the middle of a response body,
which the servers themselves cannot be told to do:

    with CuttingProxy(upstream_port) as proxy:
        proxy.cut_next("/bucket/key", after_body_bytes=200_000)
        ... client pointed at proxy.url ...
        proxy.requests  # [ProxiedRequest(method, target, range, length), ...]
        proxy.trickle_next("/bucket/key", interval=0.2)  # that response's body: 1 byte / 0.2 s
        proxy.stall_next("/bucket/key", after_body_bytes=10)  # 10 body bytes, then silence
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from typing import Any, NamedTuple

__all__ = ["CuttingProxy", "ProxiedRequest"]

_HEADER_END = b"\r\n\r\n"


class ProxiedRequest(NamedTuple):
    method: str
    target: str
    range: str | None
    length: int | None = None
    """The request's Content-Length (body bytes sent), when it had one."""


def _header_value(head: bytes, name: bytes) -> str | None:
    m = re.search(rb"\r\n" + name + rb":[ \t]*([^\r\n]*)", head, re.IGNORECASE)
    return m.group(1).decode("latin-1").strip() if m else None


class CuttingProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._requests: list[ProxiedRequest] = []
        self._cuts: list[tuple[str, int]] = []
        self._slow: list[tuple[str, str, float]] = []  # (needle, "trickle"|"stall", value)
        self._released = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._requests)

    def cut_next(self, target_contains: str, after_body_bytes: int) -> None:
        """Cut the response to the next GET whose target contains ``target_contains``."""
        with self._lock:
            self._cuts.append((target_contains, after_body_bytes))

    def trickle_next(self, target_contains: str, interval: float) -> None:
        """Send the body of the response to the next matching GET one byte per ``interval``."""
        with self._lock:
            self._slow.append((target_contains, "trickle", interval))

    def stall_next(self, target_contains: str, after_body_bytes: int) -> None:
        """Send the headers and ``after_body_bytes`` of the next matching GET's response, then
        nothing until the proxy stops (at most 120 s)."""
        with self._lock:
            self._slow.append((target_contains, "stall", float(after_body_bytes)))

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> CuttingProxy:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped = True
        self._released.set()
        self._listener.close()
        with self._lock:
            socks = list(self._sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            state: dict[str, Any] = {"cut": None, "slow": None}
            for target in (self._pump_requests, self._pump_responses):
                args = (
                    (client, upstream, state)
                    if target == self._pump_requests
                    else (upstream, client, state)
                )
                threading.Thread(target=target, args=args, daemon=True).start()

    # -- pumps ----------------------------------------------------------------------------------
    def _pump_requests(self, src: socket.socket, dst: socket.socket, state: dict[str, Any]) -> None:
        buf = b""
        body_left = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                out = b""
                while buf:
                    if body_left:
                        take = min(body_left, len(buf))
                        out, buf, body_left = out + buf[:take], buf[take:], body_left - take
                        continue
                    end = buf.find(_HEADER_END)
                    if end < 0:
                        break
                    head, buf = buf[: end + 4], buf[end + 4 :]
                    self._log(head, state)
                    body_left = int(_header_value(head, b"Content-Length") or 0)
                    out += head
                dst.sendall(out)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _log(self, head: bytes, state: dict[str, Any]) -> None:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _, rest = line.partition(" ")
        target = rest.rpartition(" ")[0]
        with self._lock:
            length = _header_value(head, b"Content-Length")
            self._requests.append(
                ProxiedRequest(
                    method,
                    target,
                    _header_value(head, b"Range"),
                    int(length) if length is not None else None,
                )
            )
            if method == "GET":
                for i, (needle, after) in enumerate(self._cuts):
                    if needle in target:
                        state["cut"] = after
                        del self._cuts[i]
                        break
                for i, (needle, mode, value) in enumerate(self._slow):
                    if needle in target:
                        state["slow"] = (mode, value)
                        del self._slow[i]
                        break

    def _slow_body(
        self, src: socket.socket, dst: socket.socket, body: bytes, mode: str, value: float
    ) -> None:
        """Trickle the body one byte per ``value`` s, or stall after ``value`` bytes."""
        sent = 0
        while True:
            for i in range(len(body)):
                if mode == "stall" and sent >= value:
                    self._released.wait(120)
                    return
                dst.sendall(body[i : i + 1])
                sent += 1
                if mode == "trickle" and self._released.wait(value):
                    return
            if mode == "stall" and sent >= value:
                self._released.wait(120)
                return
            body = src.recv(65536)
            if not body:
                return

    def _pump_responses(
        self, src: socket.socket, dst: socket.socket, state: dict[str, Any]
    ) -> None:
        head = b""
        sent_body: int | None = None  # counting body bytes of a response being cut
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if state["slow"] is not None:
                    head += data
                    end = head.find(_HEADER_END)
                    if end < 0:
                        continue
                    dst.sendall(head[: end + 4])
                    self._slow_body(src, dst, head[end + 4 :], *state["slow"])
                    break
                cut = state["cut"]
                if cut is None:
                    dst.sendall(data)
                    continue
                if sent_body is None:
                    head += data
                    end = head.find(_HEADER_END)
                    if end < 0:
                        continue
                    dst.sendall(head[: end + 4])
                    data, head, sent_body = head[end + 4 :], b"", 0
                take = min(len(data), cut - sent_body)
                dst.sendall(data[:take])
                sent_body += take
                if sent_body >= cut:
                    break  # cut: close both sides mid-body
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
