"""benchmarks.gpu_feed (B7 into device memory) at a tiny size on the CPU: every kind of
configuration delivers each sample exactly once and the JSON has its shape; a configuration that
fails is recorded and the others still run."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "gpu_feed.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_feed", "--samples", "200", "--shards", "4",
         "--repeat", "1", "--passes", "2", "--data-dir", str(tmp_path / "data"),
         "--out", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert "| config | GB/s |" in proc.stdout and results["markdown"] in proc.stdout
    return results


def test_every_configuration_delivers_exactly_once_on_cpu(tmp_path: Path) -> None:
    res = _bench(
        tmp_path, "--device", "cpu", "--threads", "2", "--workers", "1", "--shm-workers", "2",
        "--read-procs", "2", "--h2d-reps", "3",
    )  # fmt: skip
    meta, rows = res["meta"], res["rows"]
    assert meta["samples"] == 200 and meta["rounds"] == 1 and meta["device_name"] == "cpu"
    assert meta["data_bytes"] == 200 * 224 * 224 * 3 and meta["shard_bytes"] > meta["data_bytes"]
    kinds = {r["kind"] for r in rows.values()}
    assert kinds == {"h2d", "feed", "loader", "shm", "wds", "read"}
    for name, r in rows.items():
        assert not r["errors"] and not r["skipped"], (name, r)
        assert r["runs"] == 1 and len(r["steady_s_all"]) == 1 and r["gb_per_s"] > 0
        if r["kind"] in ("h2d", "read"):
            assert r["exactly_once"] is None  # ceilings move bytes, not samples
        else:
            # both passes (start-up and steady) checked against the ids 0..199
            assert r["exactly_once"] is True and r["passes_checked"] == 2, (name, r)
            assert r["samples_per_s"] > 0


def test_a_failing_configuration_is_recorded_and_the_others_run(tmp_path: Path) -> None:
    # no CUDA on this machine: the pinned copy fails there, the page-cache read does not
    res = _bench(tmp_path, "--device", "cuda", "--only", "h2d,read", "--read-procs", "1")
    rows = res["rows"]
    failed = [r for r in rows.values() if r["kind"] == "h2d"]
    assert failed and all(r["errors"] and "gb_per_s" not in r for r in failed)
    read = rows["ceiling: page-cache read, 1 proc"]
    assert not read["errors"] and read["gb_per_s"] > 0
    assert "error:" in res["markdown"]
