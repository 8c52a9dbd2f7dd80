"""Terminal output: pure `format_*` functions return lines; printing happens at the edge (the CLI)."""

from __future__ import annotations

import math
import os
import re
import sys
import threading
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
    """Progress on stderr with elapsed time: one live bar per target with an ETA on a terminal (tqdm), plain
    lines in a log (not a terminal, TERM=dumb, or EDGEBENCH_PROGRESS=lines); silent with quiet=True.

    Lines (`progress(message)`) are the same in both modes; on a terminal they print above the bars, and
    `advance` moves a target's bar instead of printing its "[i/n] variant process k/m" line.
    tqdm and not rich: the same import time here (55 vs 58 ms) at 0.6 MB against 13.5 MB with pygments and
    markdown-it, and `bench` stays light enough for a 512 MB board."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None, bars: bool | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.bars = (not quiet) and (_terminal(self.stream) if bars is None else bars)
        self._bars: dict[str, Any] = {}
        self._lock = threading.RLock()

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        line = f"[{time.monotonic() - self.start:6.1f}s] {message}"
        with self._lock:
            if self._bars:
                from tqdm import tqdm

                tqdm.write(line, file=self.stream)
            else:
                self.stream.write(line + "\n")
                self.stream.flush()

    def advance(self, target: str, count: int, total: int | None, message: str) -> None:
        """Runner process `count` of `total` (None: not known ahead, --precision) starts on `target`."""
        if self.quiet:
            return
        if not self.bars:
            self(message)
            return
        from tqdm import tqdm

        with self._lock:
            bar = self._bars.get(target)
            if bar is None or count == 1:  # a new measurement phase (run measures one model after another)
                if bar is not None:
                    bar.reset(total=total)
                else:
                    bar = self._bars[target] = tqdm(
                        total=total, desc=target, unit="process", position=len(self._bars), file=self.stream,
                        dynamic_ncols=True, leave=True, mininterval=0.2,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} processes "
                                   "[{elapsed}<{remaining}]{postfix}")
            bar.set_postfix_str(re.sub(r"^[^:]*: \[[^\]]*\] ", "", message), refresh=False)  # variant, process
            bar.update(count - 1 - bar.n)  # the processes before this one are done

    def finish(self, target: str) -> None:
        """`target` measured all it had to: its bar full."""
        with self._lock:
            bar = self._bars.get(target)
            if bar is not None:
                bar.set_postfix_str("done", refresh=False)
                bar.update((bar.total or bar.n) - bar.n)
                bar.refresh()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


def _terminal(stream: TextIO) -> bool:
    if os.environ.get("EDGEBENCH_PROGRESS") == "lines" or os.environ.get("TERM") == "dumb":
        return False
    try:
        # a terminal of no width (a pty nobody sized) would show no bar at all: lines there
        return stream.isatty() and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):
        return False
