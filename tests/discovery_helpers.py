"""Running the discovery indexer as a real subprocess (``atdata indexer``) for the tests."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waiting import first_line


@contextmanager
def indexer_process(
    hosts: list[str], plcs: list[str], db: str, *extra: str
) -> Iterator[tuple[Any, str]]:
    """``atdata indexer`` following ``hosts``, on port 0 (``extra``: more of its options);
    (process, its base URL)."""
    argv = [sys.executable, "-m", "atdata.cli", "indexer", "--db", db, "--listen", "127.0.0.1:0"]
    argv += extra
    for host in hosts:
        argv += ["--follow", host]
    for plc in plcs:
        argv += ["--plc", plc]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    stdout = proc.stdout
    assert stdout is not None
    try:
        line = first_line(stdout, timeout=60)
        if not line.startswith("indexer listening on "):
            proc.kill()
            raise RuntimeError(f"indexer did not start: {line!r} {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


# ------------------------------------------------------------- signed repositories, made here
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def block_cid(data: bytes) -> bytes:
    """The CIDv1 (dag-cbor, sha2-256) bytes of a block."""
    import hashlib

    return b"\x01\x71\x12\x20" + hashlib.sha256(data).digest()


def car_bytes(root: bytes, blocks: dict[bytes, bytes]) -> bytes:
    import libipld

    header = libipld.encode_dag_cbor({"version": 1, "roots": [root]})
    out = bytearray(_varint(len(header)) + header)
    for cid, data in blocks.items():
        out += _varint(len(cid) + len(data)) + cid + data
    return bytes(out)


class Signer:
    """An account whose key is made here: a did:web DID (its document served by ``serve_doc``)
    and commits signed with its secp256k1 key."""

    def __init__(self, did: str, *, p256: bool = False) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.did = did
        self.p256 = p256
        self.key = ec.generate_private_key(ec.SECP256R1() if p256 else ec.SECP256K1())
        self.rev = 0

    def document(self) -> dict[str, Any]:
        import libipld
        from cryptography.hazmat.primitives import serialization

        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        return {
            "id": self.did,
            "verificationMethod": [
                {
                    "id": f"{self.did}#atproto",
                    "type": "Multikey",
                    "controller": self.did,
                    "publicKeyMultibase": libipld.encode_multibase(
                        "z", (b"\x80\x24" if self.p256 else b"\xe7\x01") + point
                    ),
                }
            ],
        }

    def sign(self, unsigned: dict[str, Any]) -> bytes:
        import libipld
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        der = self.key.sign(libipld.encode_dag_cbor(unsigned), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        n = (
            0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
            if self.p256
            else 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
        )
        s = min(s, n - s)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def commit_body(
        self,
        records: dict[str, dict[str, Any]],
        *,
        seq: int,
        signer: "Signer | None" = None,
        raw_blocks: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """A ``#commit`` body creating ``records`` (path -> value) in a one-node MST, signed by
        ``signer`` (default: this account). ``raw_blocks``: path -> block bytes used instead of
        the encoded value (to send bytes that do not match what the op names)."""
        import libipld

        blocks: dict[bytes, bytes] = {}
        entries, ops = [], []
        for path in sorted(records):
            data = libipld.encode_dag_cbor(records[path])
            cid = block_cid(data)
            blocks[cid] = (raw_blocks or {}).get(path, data)
            entries.append({"p": 0, "k": path.encode(), "v": cid, "t": None})
            ops.append({"action": "create", "path": path, "cid": cid})
        node = libipld.encode_dag_cbor({"l": None, "e": entries})
        blocks[block_cid(node)] = node
        self.rev += 1
        rev = f"3zzzzzz{self.rev:06d}"
        unsigned = {
            "did": self.did,
            "version": 3,
            "data": block_cid(node),
            "rev": rev,
            "prev": None,
        }
        commit = libipld.encode_dag_cbor({**unsigned, "sig": (signer or self).sign(unsigned)})
        commit_cid = block_cid(commit)
        blocks[commit_cid] = commit
        return {
            "seq": seq,
            "repo": self.did,
            "commit": commit_cid,
            "rev": rev,
            "since": None,
            "blocks": car_bytes(commit_cid, blocks),
            "ops": ops,
            "blobs": [],
            "tooBig": False,
            "rebase": False,
            "time": "2026-01-01T00:00:00.000Z",
        }


def frame(body: dict[str, Any], kind: str = "#commit") -> bytes:
    import libipld

    return libipld.encode_dag_cbor({"op": 1, "t": kind}) + libipld.encode_dag_cbor(body)


@contextmanager
def serve_doc(signers: "list[Signer]") -> Iterator[str]:
    """Serve each signer's DID document at ``/.well-known/did.json`` on one loopback port,
    chosen by the server; yields ``localhost%3A<port>`` for their ``did:web`` DIDs (set
    ``signer.did`` from it before use)."""
    import json as _json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = _json.dumps(signers[0].document()).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # a short poll: shutdown() waits for the next one (0.5 s by default)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"localhost%3A{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
