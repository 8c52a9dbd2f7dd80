"""Terminal output: pure `format_*` functions return lines; printing happens at the edge (the CLI)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO


def format_number(value: Any, digits: int = 3, missing: str = "-") -> str:
    """3 significant digits, thousands separators from 1,000 up; `missing` for None, "", NaN or text."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return missing
    if math.isnan(value):
        return missing
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A plain aligned table; numbers right-aligned, text left-aligned."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for cell, width in zip(cells, widths):
            numeric = cell[:1].isdigit() or cell[:1] == "-" and cell[1:2].isdigit()
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


def format_summary(rows: Iterable[Any]) -> list[str]:
    """The compact result table of `bench` and `run` (SummaryRow objects or dicts)."""
    headers = ["variant", "target", "median ms", "p90 ms", "p99 ms", "95% CI ms", "items/s", "init ms",
               "peak RSS MB", "accuracy", "status"]
    rows = list(rows)
    getters = [r.get if isinstance(r, dict) else (lambda k, r=r: getattr(r, k, None)) for r in rows]
    streams = any(g("throughput_ips_streams") not in (None, "") for g in getters)
    if streams:  # beside the single-stream items/s, never in its place
        headers[7:7] = ["streams", "items/s N streams", "stream p90 ms"]
    body = []
    for r, g in zip(rows, getters):
        ci = "-" if g("latency_ms_ci95_low") in (None, "") else \
            f"{format_number(g('latency_ms_ci95_low'))}-{format_number(g('latency_ms_ci95_high'))}"
        acc = g("accuracy")
        body.append([
            g("variant"), g("target"), *(format_number(g(k)) for k in ("latency_ms_median", "latency_ms_p90",
                                                                        "latency_ms_p99")),
            ci, format_number(g("throughput_ips")),
            *([format_number(g("streams")), format_number(g("throughput_ips_streams")),
               format_number(g("stream_latency_ms_p90"))] if streams else []),
            format_number(g("init_ms")), format_number(g("peak_rss_mb")),
            "-" if acc in (None, "") else f"{float(acc):.2%}",
            g("status") + (" (throttled)" if str(g("throttled")).lower() == "true" else ""),
        ])
    return format_table(headers, body)


class Progress:
    """Progress lines on stderr with elapsed time; silent with quiet=True (CI logs)."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        self.stream.write(f"[{elapsed:6.1f}s] {message}\n")
        self.stream.flush()
