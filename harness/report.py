"""`report.md` and its plots, from a run folder's files (so `edgebench report DIR` can redo them anytime).

Each variant is set against the baseline (fp32 when present) with the comparison statistics of
`harness.compare_stats`: a ratio of medians with a 95% interval over processes and a verdict, so the
report says plainly when a variant is not faster instead of letting a smaller median speak for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from export.methods import METHODS
from export.variants import variant_or_none
from harness import advice
from harness.console import format_number
from harness.plotlabels import place_labels
from harness.report_html import write_html
from targets.errors import EdgebenchError
from harness.results import SAMPLES_CSV, SUMMARY_CSV, read_csv_rows
from targets.fileio import atomic_write_text, cell_number
from harness.streams import report_section

REPORT_MD = "report.md"
BASELINE = "fp32"

# (baseline groups, candidate groups) -> object with ratio, ci_low, ci_high, verdict
Comparer = Callable[[list[list[float]], list[list[float]]], Any]


def describe_variant(spec: str) -> str:
    """What a variant spec did to the model, in plain words."""
    v = variant_or_none(spec)
    return v.describe() if v is not None else "as given"


def pareto_front(points: list[tuple[float, float, str]]) -> list[str]:
    """Names on the front of (latency lower is better, accuracy higher is better)."""
    front, best = [], -math.inf
    for latency, accuracy, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            front.append(name)
            best = accuracy
    return front


def _groups(samples: pd.DataFrame, target: str, variant: str, threads: Any = None,
            batch_size: Any = None) -> list[list[float]]:
    """Per-process latencies of one variant on one target (at one thread count and batch size when given:
    a sweep measures a variant several times)."""
    sel = samples[(samples["target"] == target) & (samples["variant"] == variant)]
    for column, value in (("threads", threads), ("batch_size", batch_size)):
        if column in sel.columns and value is not None:
            sel = sel[sel[column].isna()] if cell_number(value) is None else sel[sel[column] == cell_number(value)]
    return [g["latency_ms"].tolist() for _, g in sel.groupby("process_index")]


def _row_groups(samples: pd.DataFrame, target: str) -> Callable[[dict], list[list[float]]]:
    """A row's per-process latencies, each selection made once: the advice and the plots ask for the same
    rows several times, and every selection scans the whole samples table."""
    cache: dict[tuple, list[list[float]]] = {}

    def groups(r: dict) -> list[list[float]]:
        key = (r["variant"], cell_number(r.get("threads")), cell_number(r.get("batch_size")))  # NaN != NaN
        if key not in cache:
            cache[key] = _groups(samples, target, r["variant"], r.get("threads"), r.get("batch_size"))
        return cache[key]

    return groups


def what_to_ship(records: list[dict], groups: Callable[[dict], list[list[float]]]) -> list[str]:
    """The report's advice for one target: the variant, each float model's INT8 form, each variant's
    thread count, every one with its interval and its verdict against the runner-up (harness.advice)."""
    lines = []
    shipped = advice.ship(records, groups, baseline=BASELINE)
    if shipped:
        lines.append("- Ship " + shipped.sentence())
    for parent, choice in advice.int8_forms(records, groups).items():
        lines.append(f"- INT8 form for {parent}: " + choice.sentence())
    for variant, choice in advice.best_threads(records, groups).items():
        lines.append(f"- Threads for {variant}: " + choice.sentence())
    return lines


def _plots(out: Path, target: str, rows: pd.DataFrame, groups: Callable[[dict], list[list[float]]],
           speed: dict[str, Any], suffix: str) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    ok = rows[rows["status"] == "ok"].sort_values("latency_ms_median")
    if ok.empty:
        return made
    names = ok["variant"].tolist()

    # accuracy vs latency, Pareto front marked
    acc = ok.dropna(subset=["accuracy"])
    if not acc.empty:
        fig, ax = plt.subplots(figsize=(8, 5.5))
        points = [(r.latency_ms_median, r.accuracy * 100, r.variant) for r in acc.itertuples()]
        front = set(pareto_front(points))
        for r in acc.itertuples():
            on = r.variant in front
            err = [[r.latency_ms_median - r.latency_ms_ci95_low], [r.latency_ms_ci95_high - r.latency_ms_median]]
            ax.errorbar(r.latency_ms_median, r.accuracy * 100, xerr=err, fmt="o" if on else "s",
                        color="tab:red" if on else "tab:gray", capsize=3)
        fp = sorted((p for p in points if p[2] in front), key=lambda p: p[0])
        ax.plot([p[0] for p in fp], [p[1] for p in fp], "--", color="tab:red", label="Pareto front")
        ax.set_xscale("log")  # variants span 0.1-10 ms: on a linear axis the fast ones pile up
        ax.set_xlabel("median latency per inference (ms, log scale), bars: 95% CI")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"Accuracy vs latency on {target}")
        ax.grid(alpha=0.3)
        ax.legend()
        place_labels(ax, [(r.latency_ms_median, r.accuracy * 100, r.variant) for r in acc.itertuples()])
        made.append(_save(fig, out / f"accuracy_vs_latency{suffix}.png", "Accuracy vs latency"))

        fig, ax = plt.subplots(figsize=(8, 5.5))
        for r in acc.itertuples():
            if cell_number(r.model_bytes):
                ax.scatter(r.model_bytes / 1024, r.accuracy * 100, marker="o", color="tab:blue")
            if cell_number(r.model_zip_bytes):
                ax.scatter(r.model_zip_bytes / 1024, r.accuracy * 100, marker="^", color="tab:orange")
        ax.scatter([], [], marker="o", color="tab:blue", label="file size")
        ax.scatter([], [], marker="^", color="tab:orange", label="zip-deflated size")
        ax.set_xscale("log")
        ax.set_xlabel("model size (KiB, log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"Size vs accuracy ({target})")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        place_labels(ax, [(r.model_bytes / 1024, r.accuracy * 100, r.variant) for r in acc.itertuples()
                          if cell_number(r.model_bytes)])
        made.append(_save(fig, out / f"size_vs_accuracy{suffix}.png", "Size vs accuracy"))

    # latency distribution per variant
    data = [[x for g in groups(r) for x in g] for r in ok.to_dict("records")]
    if any(data):
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
        ax.boxplot([d or [math.nan] for d in data], orientation="horizontal", showfliers=False)
        ax.set_yticks(range(1, len(names) + 1), names)
        ax.set_xlabel("latency per inference (ms); boxes: quartiles, whiskers: 1.5 IQR (outliers hidden)")
        ax.set_title(f"Latency distribution on {target}")
        ax.grid(alpha=0.3, axis="x")
        made.append(_save(fig, out / f"latency_distribution{suffix}.png", "Latency distribution"))

    # speedup and compression vs baseline
    base = rows[(rows["variant"] == BASELINE) & (rows["status"] == "ok")]
    if not base.empty and speed:
        b = base.iloc[0]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.8), sharey=True)
        ys = range(len(names))
        sp = [1 / speed[v].ratio if v in speed else (1.0 if v == BASELINE else math.nan) for v in names]
        lo = [sp[i] - 1 / speed[v].ci_high if _has_interval(speed.get(v)) else 0 for i, v in enumerate(names)]
        hi = [1 / speed[v].ci_low - sp[i] if _has_interval(speed.get(v)) else 0 for i, v in enumerate(names)]
        colours = {"faster": "tab:green", "slower": "tab:red"}
        ax1.barh(ys, sp, xerr=[lo, hi], capsize=3,
                 color=[colours.get(speed[v].verdict, "tab:gray") if v in speed else "black" for v in names])
        ax1.axvline(1.0, color="black", lw=1)
        ax1.set_yticks(list(ys), names)
        ax1.set_xlabel(f"speedup vs {BASELINE} (x, >1 is faster; whiskers: 95% CI)\n"
                       "green: faster, red: slower, grey: no real difference")
        comp = [b.model_bytes / r.model_bytes if cell_number(r.model_bytes) else math.nan for r in ok.itertuples()]
        zcomp = [b.model_zip_bytes / r.model_zip_bytes if cell_number(r.model_zip_bytes) else math.nan
                 for r in ok.itertuples()]
        ax2.barh([y - 0.2 for y in ys], comp, height=0.4, label="file bytes", color="tab:blue")
        ax2.barh([y + 0.2 for y in ys], zcomp, height=0.4, label="zip bytes", color="tab:orange")
        ax2.axvline(1.0, color="black", lw=1)
        ax2.set_xlabel(f"compression vs {BASELINE} (x smaller)")
        ax2.legend(loc="lower right", framealpha=0.9)
        fig.suptitle(f"Speedup and compression vs {BASELINE} on {target}")
        made.append(_save(fig, out / f"speedup_compression{suffix}.png", "Speedup and compression"))
    return made


def _has_interval(cmp: Any) -> bool:
    """Too few processes give no 95% interval (its bounds come back as 0 / inf / nan)."""
    return cmp is not None and all(math.isfinite(v) and v > 0 for v in (cmp.ratio, cmp.ci_low, cmp.ci_high))


def _save(fig: Any, path: Path, title: str) -> tuple[str, str]:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return title, path.name


def _fmt(value: Any, digits: int = 3) -> str:
    return format_number(value, digits, missing="–")


def _manifest(row: pd.Series) -> dict:
    """The artifact manifest beside a measured model file, if there is one."""
    import json

    path = Path(str(row.get("model_path") or "")).with_name("manifest.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def accuracy_note(variant: str, row: pd.Series, base: pd.Series | None, parent: pd.Series | None) -> str:
    """Why a variant lost accuracy, from the evidence there is: the same file scored higher on the build
    machine (this CPU's kernels), every INT8 form lost it (the model), or the float compression did."""
    from export.int8 import DEFAULT_TOLERANCE
    from targets.cpu import describe_cpu

    acc = cell_number(row.get("accuracy"))
    if acc is None:
        return ""
    build = cell_number(row.get("build_accuracy"))
    if build is not None and row.get("accuracy_where") == "target" and (build - acc) * 100 > DEFAULT_TOLERANCE:
        machine = {"arch": row.get("arch"), "cpu_model": row.get("cpu_model"),
                   "cpu_features": str(row.get("cpu_features") or "").split() if _present(row.get("cpu_features"))
                   else None}
        cause = (f"this CPU's integer kernels ({describe_cpu(machine)})" if _present(row.get("int8_form"))
                 else "a difference in the float kernels or onnxruntime versions")
        return (f" It scores {acc:.2%} here against {build:.2%} on the build machine for the same file and data: "
                f"the loss comes from {cause}, not from the model; see the warning below for the remedy.")
    is_int8 = "+int8" in variant and "+int8dyn" not in variant
    if is_int8 and parent is not None and cell_number(parent.get("accuracy")) is not None:
        loss = (parent["accuracy"] - acc) * 100
        if loss > DEFAULT_TOLERANCE:
            warning = _manifest(row).get("int8_warning")
            return f" INT8 loses {loss:.1f} points against {parent['variant']}" + (f": {warning}." if warning else ".")
        if base is not None and cell_number(base.get("accuracy")) is not None and (base["accuracy"] - acc) * 100 > 5:
            return (f" INT8 itself costs {loss:+.1f} points; the loss against {BASELINE} comes from "
                    f"{parent['variant']}.")
        return ""
    if base is not None and cell_number(base.get("accuracy")) is not None and (base["accuracy"] - acc) * 100 > 5:
        v = variant_or_none(variant)
        advice = f" {METHODS[v.method].loss_note}" if v is not None and METHODS[v.method].loss_note else ""
        return f" It loses {(base['accuracy'] - acc) * 100:.0f} accuracy points: too aggressive for this model." + advice
    return ""


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value) != ""


def verdict_line(variant: str, row: pd.Series, base: pd.Series | None, cmp: Any,
                 parent: pd.Series | None = None) -> str:
    """One sentence per variant: what changed and whether its speed difference is real."""
    what = describe_variant(variant)
    if row["status"] != "ok":
        return f"- **{variant}** ({what}): not measured — {row['status']}: {row['error']}"
    if base is None or cmp is None or variant == BASELINE:
        acc = f", accuracy {row['accuracy']:.2%}" if cell_number(row.get("accuracy")) is not None else ""
        return (f"- **{variant}** ({what}): median {_fmt(row['latency_ms_median'])} ms{acc}."
                + accuracy_note(variant, row, base, parent))
    parts = []
    ratio, lo, hi = cmp.ratio, cmp.ci_low, cmp.ci_high
    if not _has_interval(cmp):
        parts.append(f"median ratio {ratio:.2f} vs {BASELINE}, but too few processes for a 95% interval: "
                     "no verdict (use --processes 5 or more)")
    elif cmp.verdict == "faster":
        parts.append(f"**{1 / ratio:.2f}× faster** than {BASELINE} (95% CI {1 / hi:.2f}–{1 / lo:.2f}×)")
    elif cmp.verdict == "slower":
        parts.append(f"**{ratio:.2f}× slower** than {BASELINE} (95% CI {lo:.2f}–{hi:.2f}×)")
    elif cmp.verdict == "same":
        parts.append(f"**not faster**: same speed as {BASELINE} within the threshold "
                     f"(ratio {ratio:.2f}, 95% CI {lo:.2f}–{hi:.2f})")
    else:
        parts.append(f"**no clear difference** from {BASELINE} (ratio {ratio:.2f}, 95% CI {lo:.2f}–{hi:.2f}); "
                     "measure longer (more --processes) to decide")
    if cell_number(row.get("model_bytes")) and cell_number(base.get("model_bytes")):
        parts.append(f"file {row['model_bytes'] / base['model_bytes']:.0%} of {BASELINE}'s, "
                     f"zipped {row['model_zip_bytes'] / base['model_zip_bytes']:.0%}")
    if cell_number(row.get("accuracy")) is not None and cell_number(base.get("accuracy")) is not None:
        delta = (row["accuracy"] - base["accuracy"]) * 100
        parts.append(f"accuracy {row['accuracy']:.2%} ({delta:+.1f} points)")
    note = accuracy_note(variant, row, base, parent)
    v = variant_or_none(variant)
    if v is not None and v.quant is None and METHODS[v.method].slow_note and cmp.verdict != "faster":
        note += " " + METHODS[v.method].slow_note
    elif v is not None and v.quant == "int8dyn" and cmp.verdict == "slower":
        note += " Dynamic quantization computes activation scales at run time; on a CNN that costs more than it saves."
    return f"- **{variant}** ({what}): " + "; ".join(parts) + "." + note


def write_report(out_dir: Path, comparer: Comparer | None = None) -> Path:
    """(Re)write out_dir/report.md and its PNG plots from summary.csv and samples.csv."""
    out_dir = Path(out_dir)
    summary_path = out_dir / SUMMARY_CSV
    if not summary_path.exists():
        raise EdgebenchError(f"{out_dir} has no {SUMMARY_CSV}; give a folder written by edgebench run or bench")
    read_csv_rows(summary_path)  # refuses a newer schema with a clear message
    rows = pd.read_csv(summary_path)
    samples_path = out_dir / SAMPLES_CSV
    samples = pd.read_csv(samples_path) if samples_path.exists() else pd.DataFrame(
        columns=["target", "variant", "process_index", "latency_ms"])
    if comparer is None:
        from harness.compare_stats import compare_samples as comparer

    lines = ["# edgebench report", ""]
    run_ids = ", ".join(sorted(set(rows["run_id"].astype(str))))
    lines += [f"Run(s): {run_ids}. Files: `summary.csv` (one row per variant and target), `samples.csv` "
              "(every timed call), `machine.json`, `pyperf.json`.", ""]
    for target, every in rows.groupby("target", sort=False):
        groups = _row_groups(samples, target)
        records = every.to_dict("records")
        best = advice.at_best_threads(records, groups)  # a thread sweep: each variant at its best count
        kept = {(r["variant"], r.get("threads"), r.get("batch_size")) for r in best}
        trows = every[[(r["variant"], r.get("threads"), r.get("batch_size")) in kept or r["status"] != "ok"
                       for r in records]]
        trows = trows.sort_values("latency_ms_median", na_position="last")
        suffix = "" if rows["target"].nunique() == 1 else "_" + "".join(c if c.isalnum() else "_" for c in target)
        first = trows.iloc[0]
        lines += [f"## {target}", "",
                  f"{first.get('cpu_model', '')} ({first.get('arch', '')}"
                  + (f"; CPU features: {first['cpu_features']}" if _present(first.get("cpu_features")) else "")
                  + "), onnxruntime "
                  f"{first.get('onnxruntime_version', '')}, load average at start "
                  f"{_fmt(trows['load_avg_1m'].max())}.", ""]
        base_rows = trows[(trows["variant"] == BASELINE) & (trows["status"] == "ok")]
        base = base_rows.iloc[0] if not base_rows.empty else None
        speed = {}
        if base is not None:
            base_groups = groups(base.to_dict())
            for _, r in trows[trows["status"] == "ok"].iterrows():
                mine = groups(r.to_dict())
                if r["variant"] != BASELINE and mine and base_groups:
                    speed[r["variant"]] = comparer(base_groups, mine)
        advice_lines = what_to_ship(records, groups)
        if advice_lines:
            lines += ["### What to ship here", "", *advice_lines, ""]
        lines += ["| variant | median ms | p90 ms | p99 ms | 95% CI ms | items/s | size KiB | zip KiB | "
                  "params | accuracy | F1 | speedup | verdict | status |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in trows.iterrows():
            cmp = speed.get(r["variant"])
            sp = f"{1 / cmp.ratio:.2f}×" if cmp else ("1.00×" if r["variant"] == BASELINE else "–")
            verdict = cmp.verdict if cmp else ("baseline" if r["variant"] == BASELINE else "–")
            ci = (f"{_fmt(r['latency_ms_ci95_low'])}–{_fmt(r['latency_ms_ci95_high'])}"
                  if cell_number(r["latency_ms_ci95_low"]) else "–")
            acc = f"{r['accuracy']:.2%}" if cell_number(r["accuracy"]) is not None else "–"
            f1 = f"{r['f1_macro']:.3f}" if cell_number(r["f1_macro"]) is not None else "–"
            kib = lambda v: _fmt(v / 1024) if cell_number(v) else "–"  # noqa: E731
            status = r["status"] + (" (throttled)" if str(r.get("throttled")).lower() == "true" else "")
            streams = f" · {int(r['streams'])} streams" if cell_number(r.get("streams")) else ""
            lines.append(f"| {r['variant']}{streams} | {_fmt(r['latency_ms_median'])} | {_fmt(r['latency_ms_p90'])} | "
                         f"{_fmt(r['latency_ms_p99'])} | {ci} | {_fmt(r['throughput_ips'])} | "
                         f"{kib(r['model_bytes'])} | {kib(r['model_zip_bytes'])} | {_fmt(r['params'])} | {acc} | "
                         f"{f1} | {sp} | {verdict} | {status} |")
        lines += ["", "### What each variant changed, and whether it is really faster", ""]
        by_variant = {r["variant"]: r for _, r in trows[trows["status"] == "ok"].iterrows()}
        for _, r in trows.iterrows():
            parent = by_variant.get(str(r["variant"]).split("+")[0]) if "+" in str(r["variant"]) else None
            lines.append(verdict_line(r["variant"], r, base, speed.get(r["variant"]), parent))
        warned = trows[trows["warnings"].astype("string").fillna("") != ""]
        if not warned.empty:
            lines += ["", "### Measurement warnings", ""]
            lines += [f"- {r['variant']}: {r['warnings']}" for _, r in warned.iterrows()]
        lines.append("")
        lines += report_section(trows.to_dict("records"), out_dir, target, suffix)
        for title, name in _plots(out_dir, target, trows, groups, speed, suffix):
            lines += [f"### {title}", "", f"![{title}]({name})", ""]
    path = out_dir / REPORT_MD
    atomic_write_text(path, "\n".join(lines) + "\n")
    write_html(out_dir, lines)  # the same lines as one self-contained page
    return path
