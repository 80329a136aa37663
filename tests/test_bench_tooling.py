"""Benchmark tooling: two real (tiny) runs of the quick suite are saved with machine and commit,
compared with ratios and a noise rule, and rendered as an HTML report that headless Chromium
draws without console errors."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=900,1400",
]


def _run(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode in ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of the quick suite (B1 only, 200 samples, one repetition), saved as A and B.
    The shards go to this test's directory: not benchmarks/.data, which another run of the
    suite in the same checkout (`CI_PARALLEL=1 bash .ci/run`) would share."""
    d = tmp_path_factory.mktemp("bench")
    for name in ("A", "B"):
        out = d / f"results-{name}.json"
        _run("benchmarks.run", "--quick", "--scenarios", "B1", "--no-atdata07", "--repeat", "1",
             "--write-repeat", "1", "--samples", "200", "--budget", "1", "--out", str(out),
             "--data-dir", str(d / "data"))  # fmt: skip
        _run("benchmarks.saved", "--saved-dir", str(d / "saved"), "save", name, "--from", str(out))
    return d / "saved"


def test_saved_runs_carry_figures_machine_and_commit(saved: Path) -> None:
    doc = json.loads((saved / "A.json").read_text())
    assert doc["name"] == "A" and re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?", doc["git_commit"])
    assert doc["machine"]["cores"] and doc["machine"]["python"]
    ordered = doc["figures"]["B1 ordered/ours"]
    assert ordered["samples_per_s"] > 0 and ordered["rss_mib"] > 0 and ordered["ttfb_s"] > 0


def test_compare_prints_ratios_between_two_runs(saved: Path) -> None:
    proc = _run("benchmarks.saved", "--saved-dir", str(saved), "compare", "A", "B", ok=(0, 1))
    for key in ("B1 ordered/ours", "B1 shuffled/ours", "B1 write/ours", "B1 ordered/wds"):
        assert re.search(rf"^{re.escape(key)}\s+\d+\.\d\dx\s", proc.stdout, re.M), proc.stdout
    assert "slower by more than max(10%, noise of A + noise of B)" in proc.stdout


def test_compare_flags_a_regression_beyond_noise_and_not_within_it(saved: Path) -> None:
    doc = json.loads((saved / "A.json").read_text())
    doc["name"] = "slow"
    doc["figures"]["B1 ordered/ours"]["samples_per_s"] /= 2
    doc["figures"]["B1 ordered/ours"]["mb_per_s"] /= 2
    doc["figures"]["B1 shuffled/ours"]["mb_per_s"] *= 0.95  # within the 10% floor
    (saved / "slow.json").write_text(json.dumps(doc))
    proc = _run("benchmarks.saved", "--saved-dir", str(saved), "compare", "A", "slow", ok=(1,))
    flagged = [line.split()[:2] for line in proc.stdout.splitlines() if "REGRESSION" in line]
    assert flagged == [["B1", "ordered/ours"]], proc.stdout
    assert re.search(r"^B1 ordered/ours\s+0\.50x", proc.stdout, re.M)
    noisy = json.loads(json.dumps(doc))
    noisy["figures"]["B1 ordered/ours"]["noise"] = 0.6  # repetitions disagree by 60%: not flagged
    (saved / "noisy.json").write_text(json.dumps(noisy))
    assert (
        "REGRESSION"
        not in _run("benchmarks.saved", "--saved-dir", str(saved), "compare", "A", "noisy").stdout
    )


def _render(page: Path, tmp_path: Path) -> tuple[bytes, list[str]]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        why = "chromium is not installed (scripts/provision-test-infra.sh installs it)"
        if os.environ.get("ATDATA_REQUIRE_SERVICES") == "1":
            pytest.fail(why)
        pytest.skip(why)
    shot = tmp_path / f"{page.stem}.png"
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return shot.read_bytes(), console


def test_the_console_check_sees_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><p>x</p><script>console.error("deliberate")</script>')
    _, console = _render(bad, tmp_path)
    assert any("deliberate" in line for line in console)


def test_report_renders_in_headless_chromium(saved: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    _run("benchmarks.saved", "--saved-dir", str(saved), "report", "A", "B", "-o", str(out))
    text = out.read_text()
    assert text.count("<svg") == 3 and "Throughput" in text and "Time to first batch" in text
    assert "Peak RSS" in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    png, console = _render(out, tmp_path)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert console == []
    shutil.copy(tmp_path / "report.png", saved.parent / "report.png")  # for a person to look at
