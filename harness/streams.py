"""Concurrent streams: what a target can deliver (items/s with N streams), beside the single-stream latency.

The runner's streams phase (targets/runner.py, streams_phase) runs N threads, each calling the model back
to back; this module owns the harness side: the `--streams` / `measure.streams` values, the summary
columns derived from the processes' raw stream samples, and the latency/throughput curve of a report.
`throughput_ips` stays what it always was (batch / mean latency of one sequential loop); the streams
figures live in their own columns so the two are never confused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.stats import bootstrap_median_ci, percentile
from targets.errors import EdgebenchError
from targets.fileio import cell_number
from targets.runner import STREAM_SESSIONS  # noqa: F401 - the runner's choices, re-exported for the harness

AUTO = "auto"  # one stream per core of the target (the runner resolves it there)
STREAMS_HELP = ("measure N concurrent streams after the single-stream loop: total items/s and per-stream "
                "latency; a list sweeps (e.g. 1,2,auto; auto = one stream per core)")

StreamsValue = int | str  # a whole number >= 1, or AUTO


def streams_value(raw: Any, where: str = "") -> StreamsValue:
    """One checked streams value: a whole number >= 1 or "auto"; `where` prefixes a message ("key: ")."""
    if isinstance(raw, str) and raw.strip().lower() == AUTO:
        return AUTO
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise EdgebenchError(f"{where}{raw!r} is not a stream count; give whole numbers >= 1 or "
                             f"{AUTO} (one stream per core), e.g. 1,2,{AUTO}")
    return raw


def parse_streams(text: str | Sequence[Any], where: str = "") -> tuple[StreamsValue, ...]:
    """The streams sweep from a flag ("1,2,auto") or a TOML value (2, "auto" or [1, 2, "auto"])."""
    parts = text.split(",") if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else [text]
    values = tuple(streams_value(p, where) for p in parts)
    if not values:
        raise EdgebenchError(f"{where}no stream count given; e.g. 1,2,{AUTO}")
    if len(set(values)) != len(values):
        raise EdgebenchError(f"{where}a stream count is listed twice; list each once")
    return values


def streams_figures(processes: Iterable[Any]) -> dict[str, Any]:
    """SummaryRow's streams columns from the ok processes: total items/s with a CI over processes, and the
    per-stream latency percentiles (empty when no streams were measured).

    The process is the unit of evidence, as for latency: the CI is a bootstrap of the median of the
    per-process totals. Latency percentiles pool every counted call of every stream and process.
    """
    runs = [p for p in processes if p.ok and p.throughput_ips_streams]
    if not runs:
        return {}
    totals = [p.throughput_ips_streams for p in runs]
    low, high = bootstrap_median_ci([[t] for t in totals])
    calls = [v for p in runs for stream in p.stream_latencies_ms for v in stream]
    first = runs[0]
    return {
        "streams": first.streams, "stream_threads": first.stream_threads, "stream_sessions": first.stream_sessions,
        "throughput_ips_streams": _round(percentile(totals, 50), 3),
        "throughput_ips_streams_ci95_low": _round(low, 3), "throughput_ips_streams_ci95_high": _round(high, 3),
        "stream_latency_ms_median": _round(percentile(calls, 50)) if calls else None,
        "stream_latency_ms_p90": _round(percentile(calls, 90)) if calls else None,
        "stream_latency_ms_p99": _round(percentile(calls, 99)) if calls else None,
    }


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def curves(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[int, float, float, float, float]]]:
    """Per (variant, target): (N, items/s, its CI low, CI high, per-stream median ms) sorted by N.

    Rows are summary.csv dicts; a stream count measured twice (2 and auto on a 2-core target) keeps the
    later row, as a re-measurement would.
    """
    found: dict[tuple[str, str], dict[int, tuple[int, float, float, float, float]]] = {}
    for r in rows:
        ips = cell_number(r.get("throughput_ips_streams"))
        if r.get("status") != "ok" or cell_number(r.get("streams")) is None or ips is None:
            continue
        n = int(cell_number(r["streams"]))  # type: ignore[arg-type]
        low, high = cell_number(r.get("throughput_ips_streams_ci95_low")), cell_number(r.get("throughput_ips_streams_ci95_high"))
        latency = cell_number(r.get("stream_latency_ms_median"))
        point = (n, ips, ips if low is None else low, ips if high is None else high,
                 math.nan if latency is None else latency)
        found.setdefault((r["variant"], r["target"]), {})[n] = point
    return {key: [points[n] for n in sorted(points)] for key, points in found.items()}


def report_section(rows: Iterable[dict[str, Any]], out: Path, target: str, suffix: str) -> list[str]:
    """report.md lines for one target's streams rows: a table and the latency/throughput curve (empty without)."""
    found = curves(rows)
    found = {v: pts for (v, t), pts in found.items() if t == target}
    if not found:
        return []
    lines = ["### Throughput with concurrent streams", "",
             "N streams call the model back to back at once (each with its own intra-op threads); items/s is "
             "their total, median over processes with its 95% interval. `items/s` in the table above is one "
             "stream calling sequentially.", "",
             "| variant | streams | items/s (95% CI) | vs 1 stream | per-stream median ms |", "|---|---|---|---|---|"]
    for variant, points in found.items():
        one = next((p[1] for p in points if p[0] == 1), None)
        for n, ips, low, high, lat in points:
            gain = f"{ips / one:.2f}×" if one else "–"
            lines.append(f"| {variant} | {n} | {ips:,.0f} ({low:,.0f}–{high:,.0f}) | {gain} | {lat:.4g} |")
    lines += ["", "### Latency and throughput by stream count", "", f"![streams](streams{suffix}.png)", ""]
    _plot(found, out / f"streams{suffix}.png", target)
    return lines


def _plot(found: dict[str, list[tuple[int, float, float, float, float]]], path: Path, target: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.plotlabels import place_labels

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    labels: list[tuple[float, float, str]] = []
    for variant, points in found.items():
        ns = [p[0] for p in points]
        ips = [p[1] for p in points]
        err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        line = ax1.errorbar(ns, ips, yerr=err, marker="o", capsize=3, label=variant)
        ax2.plot(ips, [p[4] for p in points], marker="o", color=line[0].get_color(), label=variant)
        labels += [(x, y, f"N={n}") for n, x, y in zip(ns, ips, (p[4] for p in points))]
    ax1.set_xlabel("concurrent streams N")
    ax1.set_ylabel("total items/s (bars: 95% CI over processes)")
    ax1.set_xticks(sorted({p[0] for pts in found.values() for p in pts}))
    ax2.set_xlabel("total items/s")
    ax2.set_ylabel("per-stream median latency (ms)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Latency/throughput curve on {target}")
    fig.tight_layout()
    place_labels(ax2, labels)
    fig.savefig(path, dpi=110)
    plt.close(fig)
