"""A self-contained HTML benchmark report: inline SVG bar charts, no scripts, no network.

Charts per scenario: throughput by operation and comparator (MB/s, or samples/s where the
scenario's sizes are not comparable in bytes), time to first batch, and peak RSS. Several runs
(saved runs or results files) appear side by side, labelled by run name.
"""

import html
from typing import Any

from .report import OPS, READERS

COLORS = {"ours": "#2563eb", "atdata07": "#f59e0b", "wds": "#10b981", "raw": "#6b7280"}
WIDTH, LABEL_W, ROW_H = 760, 300, 22


def _bars(title: str, unit: str, rows: list[tuple[str, float, str]]) -> str:
    """One horizontal bar chart as inline SVG: (label, value, colour) per row."""
    if not rows:
        return ""
    top = max(v for _, v, _ in rows) or 1.0
    span = WIDTH - LABEL_W - 90
    height = 34 + ROW_H * len(rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="18" class="t">{html.escape(title)} ({html.escape(unit)})</text>',
    ]
    for i, (label, value, color) in enumerate(rows):
        y = 30 + i * ROW_H
        w = max(1.0, span * value / top)
        same = i > 0 and rows[i - 1][0].rsplit(" · ", 1)[0] == label.rsplit(" · ", 1)[0]
        shade = ' fill-opacity="0.55"' if same else ""  # a later run of the same measurement
        parts += [
            f'<text x="{LABEL_W - 8}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>',
            f'<rect x="{LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{ROW_H - 6}" '
            f'fill="{color}"{shade}>'
            f"<title>{html.escape(label)}: {value:,.3g} {html.escape(unit)}</title></rect>",
            f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 15}">{_num(value)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts)


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.3g}"


def _label(key: str, run: str | None) -> str:
    op, reader = key.split("/")
    cold = op.endswith("-cold")
    text = f"{OPS.get(op.removesuffix('-cold'), op)}{' (cold)' if cold else ''} · {READERS.get(reader, reader)}"
    return f"{text} · {run}" if run else text


def _scenario_charts(sid: str, runs: list[dict[str, Any]]) -> str:
    entries: list[tuple[str, str, dict[str, Any]]] = []  # (key, run label, measurement)
    title = sid
    for run in runs:  # a later run's bars are drawn lighter (see _bars)
        sc = run["results"].get("scenarios", {}).get(sid)
        if not sc:
            continue
        title = f"{sid} {sc.get('title', '')}: {sc.get('samples', 0):,} samples, {sc.get('shards', '?')} shards"
        for key, m in sc.get("measurements", {}).items():
            if m.get("seconds"):
                entries.append((key, run["name"] if len(runs) > 1 else "", m))
    entries.sort(key=lambda e: (e[0].split("/")[0], e[0].split("/")[1] != "ours", e[0], e[1]))
    by_bytes = all(m.get("mb_per_s") for _, _, m in entries)
    unit = "MB/s" if by_bytes else "samples/s"
    field = "mb_per_s" if by_bytes else "samples_per_s"

    def rows(get: str, scale: float = 1.0) -> list[tuple[str, float, str]]:
        out = []
        for key, run, m in entries:
            value = m.get(get)
            if value:
                out.append(
                    (
                        _label(key, run or None),
                        float(value) * scale,
                        COLORS.get(key.split("/")[1], "#888"),
                    )
                )
        return out

    return "\n".join(
        [
            f"<section><h2>{html.escape(title)}</h2>",
            _bars("Throughput", unit, rows(field)),
            _bars("Time to first batch", "ms", rows("ttfb", 1e3)),
            _bars("Peak RSS", "MiB", rows("rss_mib")),
            "</section>",
        ]
    )


def render_html(runs: list[dict[str, Any]]) -> str:
    """The whole report page for ``runs`` (each ``{"name", "results", ...}``)."""
    sids: list[str] = []
    for run in runs:
        for sid in run["results"].get("scenarios", {}):
            if sid not in sids:
                sids.append(sid)
    heads = []
    for run in runs:
        meta = run["results"].get("meta", {})
        heads.append(
            f"<li><b>{html.escape(str(run['name']))}</b>: commit {html.escape(str(meta.get('git', run.get('git_commit', '?'))))}, "
            f"{html.escape(str(meta.get('cpu', '?')))} ({meta.get('cores', '?')} cores), "
            f"Python {html.escape(str(meta.get('python', '?')))}, {'quick' if meta.get('quick') else 'full'} sizes, "
            f"started {html.escape(str(meta.get('started', '?')))}</li>"
        )
    legend = " ".join(
        f'<span class="k"><i style="background:{c}"></i>{html.escape(READERS[r])}</span>'
        for r, c in COLORS.items()
    )
    style = (
        "body{font:14px system-ui,sans-serif;margin:24px;color:#111;max-width:800px}"
        "h1{font-size:22px}h2{font-size:16px;margin-top:28px}svg{display:block;margin:8px 0}"
        "svg text{font-size:12px;fill:#222}svg text.t{font-weight:600;font-size:13px}"
        ".k{margin-right:14px}.k i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            "<title>atdata benchmark report</title>",
            f"<style>{style}</style></head><body>",
            "<h1>atdata benchmark report</h1>",
            f"<ul>{''.join(heads)}</ul>",
            f"<p>{legend}</p>",
            "<p>Bars are medians of the repetitions; reads are of the same shard files for every reader.</p>",
            *(_scenario_charts(sid, runs) for sid in sids),
            "</body></html>",
        ]
    )
