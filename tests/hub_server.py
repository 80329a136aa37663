"""A loopback Hub-compatible server for tests: the endpoints ``huggingface_hub`` calls to list,
download (with ranges) and commit (regular and LFS "basic" uploads) to dataset repositories.

Why our own: the candidates were tried first (.reference/hub-test-server.md): ``olah`` is a
read-only mirror (no preupload/commit) and the ``hf-local-hub`` wheel ships no server (it
drives a Go binary that is not in the wheel). This one is stdlib only, binds 127.0.0.1, keeps
blobs in a temporary directory and implements exactly what the client (checked against
huggingface_hub 2.4.0, with ``HF_HUB_DISABLE_XET=1``) sends; the endpoint list is in
.reference/hub-test-server.md. Test hooks: :meth:`HubServer.tamper` rewrites a stored file
behind the server's metadata; :attr:`HubServer.fail_uploads_after` refuses LFS uploads past a
count (an interrupted upload); :attr:`HubServer.lfs_puts` counts uploaded LFS objects.
"""

import base64
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_SHA = re.compile(r"^[0-9a-f]{40}$")
_CHUNK = 1 << 20
_LFS_BATCH = ["info", "lfs", "objects", "batch"]


@dataclass
class _File:
    oid: str  # sha256 of the content (the blob's name on disk)
    size: int
    lfs: bool
    git_oid: str  # the git blob id: of the content, or of the LFS pointer file


def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_file(oid: str, size: int) -> _File:
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
    return _File(oid, size, True, _git_blob(pointer.encode()))


@dataclass
class _Commit:
    sha: str
    files: dict[str, _File]
    title: str


@dataclass
class _Repo:
    private: bool
    commits: list[_Commit] = field(default_factory=list)

    def at(self, rev: str) -> _Commit | None:
        if rev in ("main", "HEAD", "refs/heads/main"):
            return self.commits[-1]
        return next((c for c in self.commits if c.sha == rev), None)


class HubServer:
    """The server's state; :meth:`start` serves it on ``127.0.0.1`` in a daemon thread."""

    def __init__(self, root: str, *, token: str = "hf_test_token") -> None:
        self.root = root
        self.token = token
        self.repos: dict[str, _Repo] = {}
        self.lfs_puts = 0
        self.put_oids: list[str] = []  # every LFS object uploaded, in order (repeats included)
        self.downloads: list[tuple[str, str | None]] = []  # (path, Range) of each resolve GET
        self.cut_next_download_at: int | None = None  # send this many bytes, then hang up
        self.fail_uploads_after: int | None = None
        self.lock = threading.Lock()
        os.makedirs(os.path.join(root, "blobs"), exist_ok=True)
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "HubServer":
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # a short poll: stop()'s shutdown() waits for the next one (0.5 s by default)
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def blob_path(self, oid: str) -> str:
        return os.path.join(self.root, "blobs", oid)

    def tamper(self, repo_id: str, path: str, data: bytes) -> None:
        """Replace the bytes stored for ``path`` at main, keeping its recorded oid and size."""
        f = self.repos[repo_id].commits[-1].files[path]
        with open(self.blob_path(f.oid), "wb") as out:
            out.write(data)

    def store(self, data: bytes) -> str:
        oid = hashlib.sha256(data).hexdigest()
        with open(self.blob_path(oid), "wb") as out:
            out.write(data)
        return oid

    def commit(self, repo: _Repo, files: dict[str, _File], title: str) -> _Commit:
        parent = repo.commits[-1].sha if repo.commits else ""
        listing = sorted((p, f.oid) for p, f in files.items())
        sha = hashlib.sha1(json.dumps([parent, title, len(repo.commits), listing]).encode())
        made = _Commit(sha.hexdigest(), files, title)
        repo.commits.append(made)
        return made


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(
        self, status: int, payload: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, code: str = "") -> None:
        self._send(status, {"error": message}, {"X-Error-Code": code} if code else None)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _repo(self, repo_id: str, *, write: bool = False) -> _Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or ((repo.private or write) and not self._authorized()):
            self._error(
                401 if not self._authorized() else 404, "Repository not found", "RepoNotFound"
            )
            return None
        return repo

    def _commit_of(self, repo: _Repo, rev: str) -> _Commit | None:
        found = repo.at(unquote(rev)) if repo.commits else None
        if found is None:
            self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return found

    # -- routing ----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = parse_qs(url.query)
        if parts[:2] == ["api", "whoami-v2"]:
            if not self._authorized():
                return self._error(401, "Invalid credentials")
            return self._send(200, {"type": "user", "name": "tester", "orgs": []})
        if len(parts) >= 4 and parts[0] == "api" and parts[1].endswith("s"):
            repo_id = f"{parts[2]}/{parts[3]}"
            repo = self._repo(repo_id)
            if repo is None:
                return None
            rest = parts[4:]
            if not rest or rest[0] == "revision":
                commit = self._commit_of(repo, rest[1] if rest else "main")
                return None if commit is None else self._info(repo_id, repo, commit)
            if rest[0] == "tree" and len(rest) >= 2:
                commit = self._commit_of(repo, rest[1])
                if commit is None:
                    return None
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return self._tree(commit, "/".join(rest[2:]).strip("/"), recursive)
            return self._error(404, "no such endpoint")
        if len(parts) >= 5 and parts[3] == "resolve":
            repo = self._repo(f"{parts[1]}/{parts[2]}")
            if repo is None:
                return None
            commit = self._commit_of(repo, parts[4])
            return None if commit is None else self._resolve(commit, "/".join(parts[5:]))
        return self._error(404, "no such endpoint")

    def do_POST(self) -> None:
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/")[1:]]
        body = self._body()
        if parts == ["api", "repos", "create"]:
            return self._create(json.loads(body))
        if parts == ["api", "validate-yaml"]:
            return self._send(200, {"errors": [], "warnings": []})
        if len(parts) == 7 and parts[0] == "datasets" and parts[3:] == _LFS_BATCH:
            name = parts[2].removesuffix(".git")
            return self._lfs_batch(f"{parts[1]}/{name}", json.loads(body))
        if len(parts) >= 6 and parts[0] == "api":
            repo_id = f"{parts[2]}/{parts[3]}"
            repo = self._repo(repo_id, write=parts[4] != "paths-info")
            if repo is None:
                return None
            if parts[4] == "preupload":
                return self._preupload(repo, json.loads(body))
            if parts[4] == "commit":
                return self._commit(repo_id, repo, parts[5], body)
            if parts[4] == "paths-info":
                commit = self._commit_of(repo, parts[5])
                if commit is None:
                    return None
                form = parse_qs(body.decode())
                paths = form.get("paths") or json.loads(body or b"{}").get("paths", [])
                entries = [self._entry(p, commit.files[p]) for p in paths if p in commit.files]
                return self._send(200, entries)
        return self._error(404, "no such endpoint")

    def do_PUT(self) -> None:
        parts = urlsplit(self.path).path.split("/")[1:]
        if len(parts) != 2 or parts[0] != "lfs-upload":
            return self._error(404, "no such endpoint")
        with self.hub.lock:
            limit = self.hub.fail_uploads_after
            if limit is not None and self.hub.lfs_puts >= limit:
                self._body()
                return self._error(403, "upload refused (test hook: interrupted upload)")
        data = self._body()
        if hashlib.sha256(data).hexdigest() != parts[1]:
            return self._error(400, "content does not match its oid")
        self.hub.store(data)
        with self.hub.lock:
            self.hub.lfs_puts += 1
            self.hub.put_oids.append(parts[1])
        self._send(200, {})

    # -- handlers ---------------------------------------------------------------------------
    def _create(self, req: dict[str, Any]) -> None:
        if not self._authorized():
            return self._error(401, "Invalid credentials")
        repo_id = f"{req.get('organization') or 'tester'}/{req['name']}"
        url = {"url": f"{self.hub.endpoint}/datasets/{repo_id}", "name": repo_id}
        with self.hub.lock:
            if repo_id in self.hub.repos:
                return self._send(409, {"error": "You already created this dataset repo", **url})
            private = req.get("visibility") == "private" or bool(req.get("private"))
            repo = _Repo(private=private)
            self.hub.commit(repo, {}, "initial commit")
            self.hub.repos[repo_id] = repo
        self._send(200, url)

    def _info(self, repo_id: str, repo: _Repo, commit: _Commit) -> None:
        siblings = [{"rfilename": p} for p in sorted(commit.files)]
        info = {"id": repo_id, "sha": commit.sha, "private": repo.private, "siblings": siblings}
        self._send(200, info)

    def _entry(self, path: str, f: _File) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": path, "size": f.size, "oid": f.git_oid}
        if f.lfs:
            entry["lfs"] = {"oid": f.oid, "size": f.size, "pointerSize": 134}
        return entry

    def _tree(self, commit: _Commit, folder: str, recursive: bool) -> None:
        prefix = folder + "/" if folder else ""
        out: list[dict[str, Any]] = []
        dirs: set[str] = set()
        for path in sorted(commit.files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            parents = rest.split("/")[:-1]
            for i in range(1, len(parents) + 1 if recursive else min(1, len(parents)) + 1):
                dirs.add(prefix + "/".join(parents[:i]))
            if recursive or "/" not in rest:
                out.append(self._entry(path, commit.files[path]))
        if folder and not out and not dirs:
            return self._error(404, f"{folder} not found", "EntryNotFound")
        out += [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in sorted(dirs)]
        self._send(200, out)

    def _resolve(self, commit: _Commit, path: str) -> None:
        f = commit.files.get(path)
        if f is None:
            return self._error(404, "Entry not found", "EntryNotFound")
        size = f.size
        start, end = 0, size - 1
        status = 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if wanted:
            start = int(wanted.group(1))
            end = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
            if start >= size:
                return self._send(416, None, {"Content-Range": f"bytes */{size}"})
            status = 206
        headers = {
            "ETag": f'"{f.git_oid}"',
            "X-Repo-Commit": commit.sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(end - start + 1),
        }
        if f.lfs:
            headers |= {"X-Linked-Etag": f'"{f.oid}"', "X-Linked-Size": str(size)}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        with self.hub.lock:
            self.hub.downloads.append((path, self.headers.get("Range")))
            cut, self.hub.cut_next_download_at = self.hub.cut_next_download_at, None
        with open(self.hub.blob_path(f.oid), "rb") as blob:
            blob.seek(start)
            left = end - start + 1
            if cut is not None:  # a transfer broken mid-body: the client must resume by Range
                self.wfile.write(blob.read(cut))
                self.close_connection = True
                return
            while left > 0:
                chunk = blob.read(min(_CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _preupload(self, repo: _Repo, req: dict[str, Any]) -> None:
        head = repo.commits[-1].files
        files = []
        for item in req["files"]:
            path = item["path"]
            mode = "regular" if path.endswith(".md") or path == ".gitattributes" else "lfs"
            known = head.get(path)
            oid = None if known is None else known.oid if known.lfs else None
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send(200, {"files": files})

    def _lfs_batch(self, repo_id: str, req: dict[str, Any]) -> None:
        if self._repo(repo_id, write=True) is None:
            return
        objects = []
        for obj in req["objects"]:
            oid, size = str(obj["oid"]), int(obj["size"])
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                return self._error(400, "bad oid")
            item: dict[str, Any] = {"oid": oid, "size": size}
            if not os.path.exists(self.hub.blob_path(oid)):
                href = f"{self.hub.endpoint}/lfs-upload/{oid}"
                item["actions"] = {"upload": {"href": href}}
            objects.append(item)
        self._send(200, {"transfer": "basic", "objects": objects})

    def _commit(self, repo_id: str, repo: _Repo, rev: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        with self.hub.lock:
            base = repo.at(unquote(rev))
            if base is None:
                return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            files = dict(base.files)
            title = "commit"
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "header":
                    title = value.get("summary", title)
                    parent = value.get("parentCommit")
                    if parent and parent != repo.commits[-1].sha:
                        return self._error(412, "parent commit is not the head")
                elif key == "file":
                    data = base64.b64decode(value["content"])
                    oid = self.hub.store(data)
                    files[value["path"]] = _File(oid, len(data), False, _git_blob(data))
                elif key == "lfsFile":
                    oid = value["oid"]
                    if not os.path.exists(self.hub.blob_path(oid)):
                        return self._error(400, f"LFS object {oid} was never uploaded")
                    files[value["path"]] = _lfs_file(oid, int(value["size"]))
                elif key == "deletedFile":
                    files.pop(value["path"], None)
            made = self.hub.commit(repo, files, title)
        url = f"{self.hub.endpoint}/datasets/{repo_id}/commit/{made.sha}"
        self._send(200, {"commitUrl": url, "commitOid": made.sha, "success": True})
