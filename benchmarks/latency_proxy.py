"""A loopback TCP proxy that delays every byte by a fixed time each way (a link with latency).

    uv run python -m benchmarks.latency_proxy --delay-ms 2 http://127.0.0.1:8000 [URL ...]

For each target URL it listens on an ephemeral 127.0.0.1 port and prints one JSON line mapping
each target to its proxy URL, then forwards until stdin closes. Every piece read from one side is
written to the other ``delay`` seconds after it arrived (round trip: twice that); at most
``--window`` bytes are in flight per direction, so a reader that falls behind slows the sender
down as a real link's flow control would (``window / (2 * delay)`` bounds the rate, like a TCP
window over that round trip). Used by ``benchmarks.remote_bench --delay-ms`` where the kernel has
no netem qdisc (``tc qdisc ... netem delay`` is the other way; see
``benchmarks/netns_latency.sh``). Loopback only: targets must be 127.0.0.1.
"""

import argparse
import collections
import json
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

_PIECE = 1 << 20


class _Pipe:
    """One direction: pieces stamped with their due time, at most ``window`` bytes held."""

    def __init__(self, delay: float, window: int) -> None:
        self.delay = delay
        self.window = window
        self.held = 0
        self.pieces: collections.deque[tuple[float, bytes]] = collections.deque()
        self.cond = threading.Condition()

    def pump_in(self, src: socket.socket) -> None:
        try:
            while data := src.recv(_PIECE):
                with self.cond:
                    while self.held >= self.window:
                        self.cond.wait()
                    self.pieces.append((time.monotonic() + self.delay, data))
                    self.held += len(data)
                    self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.pieces.append((time.monotonic() + self.delay, b""))
            self.cond.notify_all()

    def pump_out(self, dst: socket.socket) -> None:
        while True:
            with self.cond:
                while not self.pieces:
                    self.cond.wait()
                due, data = self.pieces[0]
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self.cond:
                self.pieces.popleft()
                self.held -= len(data)
                self.cond.notify_all()
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return


def _serve(listener: socket.socket, target: tuple[str, int], delay: float, window: int) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(target)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for src, dst in ((client, upstream), (upstream, client)):
            pipe = _Pipe(delay, window)
            threading.Thread(target=pipe.pump_in, args=(src,), daemon=True).start()
            threading.Thread(target=pipe.pump_out, args=(dst,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency_proxy")
    p.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    p.add_argument("--window", type=int, default=4 << 20, help="bytes in flight per direction")
    p.add_argument("targets", nargs="+")
    args = p.parse_args(argv)
    out = {}
    for url in args.targets:
        parts = urlsplit(url)
        if parts.hostname != "127.0.0.1" or parts.port is None:
            raise SystemExit(f"loopback targets with a port only: {url}")
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        target = (parts.hostname, parts.port)
        threading.Thread(
            target=_serve,
            args=(listener, target, args.delay_ms / 1e3, args.window),
            daemon=True,
        ).start()
        out[url] = f"{parts.scheme}://127.0.0.1:{listener.getsockname()[1]}{parts.path}"
    print(json.dumps(out), flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
