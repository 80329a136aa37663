"""Which local files were verified against which sha256, so unchanged files are not re-hashed.

A file is re-hashed whenever its *fingerprint* changed since it was last verified: device, inode,
size, mtime_ns and ctime_ns. Editing a file in place changes its mtime and ctime; restoring the
mtime afterwards (``touch -d``, ``os.utime``) changes the ctime, which only the kernel sets;
replacing it changes the inode. So an unchanged fingerprint means an unchanged file for anyone
without root (and reads after a verification can still race a writer: a file is verified when it
is opened, not while it is mapped).

Verifications are remembered twice: in this process (a dict, checked first, no I/O beyond one
``stat``) and across processes in a small SQLite file, ``$ATDATA_VERIFY_MEMO``, else
``$ATDATA_HOME/verified.sqlite`` (``~/.atdata``): a per-user location, never the shard cache
directory, which several users may share. The file is safe for concurrent processes (WAL, busy
timeout), holds at most :data:`MAX_ROWS` entries (the least recently verified are dropped), and
losing it only costs a re-hash. If it cannot be opened or written, verification goes on with the
in-process memo alone. ``ATDATA_VERIFY_MEMO=off`` keeps nothing on disk.
"""

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import NamedTuple

from .._fs import sha256_file
from .._redact import Redacted
from ..errors import IntegrityError, SourceError

__all__ = ["MAX_ROWS", "MEMO_ENV", "Fingerprint", "VerifyMemo", "default_memo"]

_log = logging.getLogger(__name__)

MEMO_ENV = "ATDATA_VERIFY_MEMO"
MAX_ROWS = 100_000
_PRUNE_EVERY = 64
_CHUNK = 4 << 20


class Fingerprint(NamedTuple):
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "Fingerprint":
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VerifyMemo:
    """Verified (path, sha256) pairs with the fingerprint the file had (see the module doc)."""

    def __init__(self, db_path: str | os.PathLike[str] | None, *, max_rows: int = MAX_ROWS) -> None:
        self.db_path = Path(db_path).expanduser() if db_path is not None else None
        self.max_rows = max_rows
        self._seen: dict[tuple[str, str], Fingerprint] = {}
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        self._broken = False
        self._writes = 0

    def __repr__(self) -> str:
        return f"VerifyMemo({str(self.db_path) if self.db_path else None!r})"

    # -- the check ------------------------------------------------------------------------------
    def ensure(self, path: str, sha256: str, *, url: str, expected_size: int | None = None) -> None:
        """Return when the file at ``path`` has the bytes ``sha256`` names; IntegrityError else.

        Hashes only when the file's fingerprint differs from the last verification.
        """
        sha256 = sha256.lower()
        before = _stat(path, url)
        if expected_size is not None and before.size != expected_size:
            _log.warning(
                "%s failed verification: %d bytes, its record says %d",
                Redacted(url),
                before.size,
                expected_size,
            )
            raise IntegrityError(
                f"the file has {before.size} bytes; its record says {expected_size}. It was "
                "changed or replaced after it was written; restore it or re-insert the dataset",
                shard=url,
            )
        if self.is_verified(path, sha256, before):
            return
        digest, _ = sha256_file(path)
        if digest != sha256:
            self.forget(path, sha256)
            _log.warning(
                "%s failed verification: sha256 %s, its record says %s",
                Redacted(url),
                digest,
                sha256,
            )
            raise IntegrityError(
                f"the file's bytes do not match the recorded sha256 {sha256} (got {digest}); "
                "it was changed after it was written. Restore it or re-insert the dataset",
                shard=url,
            )
        _log.debug("%s verified: sha256 matches its record", Redacted(url))
        if _stat(path, url) == before:  # not changed while it was hashed
            self.remember(path, sha256, before)

    def is_verified(self, path: str, sha256: str, fp: Fingerprint) -> bool:
        key = (os.path.abspath(path), sha256.lower())
        if self._seen.get(key) == fp:
            return True
        row = self._query(
            "SELECT dev, ino, size, mtime_ns, ctime_ns FROM verified WHERE path=? AND sha256=?",
            key,
        )
        if row is not None and Fingerprint(*row) == fp:
            if len(self._seen) >= self.max_rows:
                self._seen.clear()
            self._seen[key] = fp
            return True
        return False

    def remember(self, path: str, sha256: str, fp: Fingerprint) -> None:
        key = (os.path.abspath(path), sha256.lower())
        if len(self._seen) >= self.max_rows:
            self._seen.clear()  # bounded in memory too; the file still remembers
        self._seen[key] = fp
        self._execute(
            "INSERT OR REPLACE INTO verified VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, *fp, time.time()),
        )

    def refresh(self, path: str, sha256: str, before: Fingerprint) -> None:
        """Record the fingerprint ``path`` has now as verified, when ``before`` was (the file
        was only touched by us in between, e.g. an LRU mtime update)."""
        if not self.is_verified(path, sha256, before):
            return
        with contextlib.suppress(OSError):
            self.remember(path, sha256, Fingerprint.of(os.stat(path)))

    def forget(self, path: str, sha256: str) -> None:
        key = (os.path.abspath(path), sha256.lower())
        self._seen.pop(key, None)
        self._execute("DELETE FROM verified WHERE path=? AND sha256=?", key)

    # -- storage --------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection | None:
        if self.db_path is None or self._broken:
            return None
        if self._conn is not None and self._conn_pid == os.getpid():
            return self._conn
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.db_path), timeout=5.0, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS verified (path TEXT NOT NULL, sha256 TEXT NOT NULL, "
                "dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, "
                "at REAL, PRIMARY KEY (path, sha256))"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS verified_at ON verified (at)")
        except sqlite3.Error:
            self._broken = True  # unusable (read-only, corrupt...): the in-process memo remains
            return None
        except OSError:
            self._broken = True
            return None
        self._conn, self._conn_pid = conn, os.getpid()
        return conn

    def _query(self, sql: str, args: tuple[object, ...]) -> tuple[int, ...] | None:
        with self._lock:
            conn = self._connect()
            if conn is None:
                return None
            try:
                row: tuple[int, ...] | None = conn.execute(sql, args).fetchone()
                return row
            except sqlite3.Error:
                return None

    def _execute(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            conn = self._connect()
            if conn is None:
                return
            try:
                conn.execute(sql, args)
                self._writes += 1
                if self._writes % _PRUNE_EVERY == 1:
                    conn.execute(
                        "DELETE FROM verified WHERE rowid IN (SELECT rowid FROM verified "
                        "ORDER BY at DESC LIMIT -1 OFFSET ?)",
                        (self.max_rows,),
                    )
            except sqlite3.Error:
                pass  # busy beyond the timeout, disk full: not remembered, re-hashed next time

    def rows(self) -> int:
        """How many verifications are stored on disk (for tests and diagnostics)."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                return 0
            return int(conn.execute("SELECT count(*) FROM verified").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None


def _stat(path: str, url: str) -> Fingerprint:
    try:
        return Fingerprint.of(os.stat(path))
    except OSError as exc:
        raise SourceError(f"cannot open shard {url!r}: {exc.strerror or exc}") from exc


_MEMOS: dict[str, VerifyMemo] = {}
_MEMOS_LOCK = threading.Lock()


def default_memo() -> VerifyMemo:
    """The memo the environment names (see the module docstring); one per location."""
    env = os.environ.get(MEMO_ENV, "")
    if env.lower() == "off":
        where = ""
    elif env:
        where = str(Path(env).expanduser())
    else:
        home = Path(os.environ.get("ATDATA_HOME") or "~/.atdata").expanduser()
        where = str(home / "verified.sqlite")
    with _MEMOS_LOCK:
        memo = _MEMOS.get(where)
        if memo is None:
            memo = _MEMOS[where] = VerifyMemo(where or None)
        return memo
