"""Saved benchmark runs: ``save NAME``, ``compare A B`` and ``report`` (``just bench-save`` & co.).

``python -m benchmarks.saved save NAME [--from results.json]`` stores the figures of a run of
``benchmarks.run`` (default: the newest ``benchmarks/.data/results-*.json``) with the machine
and git commit, as ``benchmarks/.data/saved/NAME.json`` (machine-specific, so not committed).

``python -m benchmarks.saved compare A B`` prints, for every measurement both runs have, the
throughput ratio B/A (>1 is faster), the time-to-first-batch and peak-RSS ratios, and flags a
regression when B is slower than A beyond noise. **Noise rule:** each run's noise for a
measurement is the relative spread of its repetitions, ``(max - min) / median`` of the seconds;
B regresses when ``B/A < 1 - max(0.10, noise_A + noise_B)``: slower by more than 10% *and* by
more than the two runs' repetitions disagree among themselves. Exit status 1 when any
measurement regressed (2 when a run is missing), else 0.

``python -m benchmarks.saved report [RUN ...] [-o report.html]`` writes a self-contained HTML
report (inline SVG, no scripts or network) from saved runs or results files (default: the newest
results file): throughput by scenario and comparator, time to first batch, peak RSS.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .report import environment
from .report_html import render_html

DATA = Path(__file__).resolve().parent / ".data"
SAVED = DATA / "saved"
FLOOR = 0.10


def _noise(m: dict[str, Any]) -> float:
    secs = [s for s in m.get("seconds_all") or [] if s]
    if len(secs) < 2:
        return 0.0
    return (max(secs) - min(secs)) / statistics.median(secs)


def figures(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"B1 ordered/ours": {samples_per_s, mb_per_s, ttfb_s, rss_mib, reps, noise}}``."""
    out: dict[str, dict[str, Any]] = {}
    for sid, sc in results.get("scenarios", {}).items():
        for key, m in sc.get("measurements", {}).items():
            if not m.get("seconds"):
                continue
            out[f"{sid} {key}"] = {
                "samples_per_s": m.get("samples_per_s"),
                "mb_per_s": m.get("mb_per_s"),
                "ttfb_s": m.get("ttfb"),
                "rss_mib": m.get("rss_mib"),
                "reps": m.get("reps"),
                "noise": round(_noise(m), 4),
            }
    return out


def newest_results() -> Path:
    found = sorted(DATA.glob("results-*.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit("no benchmarks/.data/results-*.json yet: run `just bench-io` first")
    return found[-1]


def save(name: str, source: Path | None, saved_dir: Path) -> Path:
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SystemExit(f"bad run name {name!r}: use letters, digits, '-', '_' and '.'")
    source = source or newest_results()
    results = json.loads(source.read_text())
    meta = results.get("meta", {})
    env = environment({})
    doc = {
        "name": name,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": str(source),
        "git_commit": meta.get("git") or env["git"],
        "machine": {k: meta.get(k, env.get(k)) for k in ("cpu", "cores", "mem_gib", "platform")}
        | {"python": meta.get("python", env["python"])},
        "quick": meta.get("quick"),
        "figures": figures(results),
        "results": results,
    }
    saved_dir.mkdir(parents=True, exist_ok=True)
    out = saved_dir / f"{name}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(f"saved {len(doc['figures'])} figures of {source.name} as {out}")
    return out


def load_run(ref: str, saved_dir: Path) -> dict[str, Any]:
    path = Path(ref) if ref.endswith(".json") else saved_dir / f"{ref}.json"
    if not path.is_file():
        known = sorted(p.stem for p in saved_dir.glob("*.json")) if saved_dir.is_dir() else []
        print(f"no saved run {ref!r} (saved: {', '.join(known) or 'none'})", file=sys.stderr)
        raise SystemExit(2)
    doc: dict[str, Any] = json.loads(path.read_text())
    if "figures" not in doc:  # a raw results file
        doc = {
            "name": path.stem,
            "figures": figures(doc),
            "results": doc,
            "machine": doc.get("meta"),
        }
    return doc


def _rate(f: dict[str, Any]) -> float | None:
    value = f.get("mb_per_s") or f.get("samples_per_s")
    return float(value) if value else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return b / a if a and b else None


def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
    fa, fb = a["figures"], b["figures"]
    print(
        f"B = {b['name']} ({b.get('git_commit', '?')}) vs A = {a['name']} ({a.get('git_commit', '?')})"
    )
    if a.get("machine") != b.get("machine"):
        print("note: the runs come from different machines; ratios compare machines as well")
    print(
        f"{'measurement':<30} {'throughput B/A':>15} {'first batch B/A':>16} {'RSS B/A':>8} {'noise':>6}  verdict"
    )
    regressed = 0
    for key in sorted(set(fa) & set(fb)):
        x, y = fa[key], fb[key]
        tput = _ratio(_rate(x), _rate(y))
        ttfb = _ratio(x.get("ttfb_s"), y.get("ttfb_s"))
        rss = _ratio(x.get("rss_mib"), y.get("rss_mib"))
        noise = (x.get("noise") or 0.0) + (y.get("noise") or 0.0)
        verdict = ""
        if tput is not None and tput < 1 - max(FLOOR, noise):
            verdict = "REGRESSION"
            regressed += 1
        elif tput is not None and tput > 1 + max(FLOOR, noise):
            verdict = "faster"

        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}x"

        print(f"{key:<30} {fmt(tput):>15} {fmt(ttfb):>16} {fmt(rss):>8} {noise:>6.0%}  {verdict}")
    only = sorted(set(fa) ^ set(fb))
    if only:
        print(f"in one run only: {', '.join(only)}")
    rule = f"slower by more than max({FLOOR:.0%}, noise of A + noise of B)"
    print(f"{regressed} regression(s) ({rule})" if regressed else f"no regressions ({rule})")
    return 1 if regressed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.saved", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--saved-dir", type=Path, default=SAVED, help="where saved runs live")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save", help="store a run's figures as NAME")
    s.add_argument("name")
    s.add_argument("--from", dest="source", type=Path, help="results JSON (default: the newest)")
    c = sub.add_parser("compare", help="ratios B/A between two saved runs")
    c.add_argument("a")
    c.add_argument("b")
    r = sub.add_parser("report", help="write an HTML report with plots")
    r.add_argument("runs", nargs="*", help="saved run names or results JSON files")
    r.add_argument("-o", "--out", type=Path, default=DATA / "report.html")
    args = p.parse_args(argv)
    if args.cmd == "save":
        save(args.name, args.source, args.saved_dir)
        return 0
    if args.cmd == "compare":
        return compare(load_run(args.a, args.saved_dir), load_run(args.b, args.saved_dir))
    runs = [load_run(ref, args.saved_dir) for ref in args.runs] or [
        load_run(str(newest_results()), args.saved_dir)
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_html(runs))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
