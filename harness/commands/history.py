"""Every stored result of a model over time, with its step changes, from the results database.

`edgebench history [--model M] [--variant V] [--target T]` prints each identity's trend (time, tool version,
model file, median and its 95% CI), flags step changes (harness/stepdetect.py: asv's penalized L1 step fit,
false alarms ~1% of step-free series) and writes a plot. Names match exactly, or as SQL LIKE patterns (`%`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.history import IDENTITY, Point, add_db_options, db_path, series
from harness.stepdetect import Step, find_steps
from targets.errors import EdgebenchError


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="M", help="only this model (a LIKE pattern with %% also works)")
    p.add_argument("--variant", metavar="V", help="only this variant")
    p.add_argument("--target", metavar="T", help="only this target")
    p.add_argument("--last", type=int, default=50, metavar="N", help="the last N results of each identity (50)")
    p.add_argument("--plot", type=Path, default=Path("results") / "history.png", metavar="FILE",
                   help="where the trend plot goes (default results/history.png)")
    add_db_options(p, writes=False)


def _ok(points: list[Point]) -> list[Point]:
    return [p for p in points if p.status == "ok" and p.median_ms and p.median_ms > 0]


def _cause(points: list[Point], step: Step) -> str:
    """What changed around the step: the model file, the tool, the machine (or none of them: the board)."""
    before, after = points[step.index - 1], points[step.index]
    causes = [what for what, a, b in (("model file", before.model_sha256, after.model_sha256),
                                      ("edgebench version", before.tool_version, after.tool_version),
                                      ("host", before.hostname, after.hostname)) if a != b]
    return f"; changed at the same time: {', '.join(causes)}" if causes else "; same model file, tool and host"


def describe(key: tuple[str, ...], points: list[Point], last: int) -> tuple[list[str], list[Step]]:
    ident = dict(zip(IDENTITY, key))
    ok = _ok(points)[-last:]
    steps = find_steps([p.median_ms for p in ok])
    lines = [f"{ident['model']} / {ident['variant']} on {ident['target']} (batch {ident['batch_size']}, threads "
             f"{ident['threads'] or 'default'}, settings {ident['settings_hash']}): {len(ok)} ok results"
             + (f" of {len(points)}" if len(points) != len(ok) else "")]
    at = {s.index: s for s in steps}
    for i, p in enumerate(ok):
        ci = f"({p.ci_low:.4g}-{p.ci_high:.4g})" if p.ci_low and p.ci_high else ""
        line = f"  {p.time_utc}  {p.tool_version:<8} {p.model_sha256[:8]:<8} {p.median_ms:>9.4g} ms {ci}"
        if i in at:
            s = at[i]
            word = "slower" if s.change > 0 else "faster"
            line += (f"   <- step: {abs(s.change):.1%} {word} from here ({s.before:.4g} -> {s.after:.4g} ms)"
                     + _cause(ok, s))
        lines.append(line)
    if not steps and len(ok) >= 6:
        lines.append("  no step change")
    elif len(ok) < 6:
        lines.append("  (steps are looked for from 6 results on)")
    return lines, steps


def plot(path: Path, groups: list[tuple[tuple[str, ...], list[Point], list[Step]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = groups[:12]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.6 * len(shown)), squeeze=False)
    for ax, (key, points, steps) in zip(axes[:, 0], shown):
        ident = dict(zip(IDENTITY, key))
        x = list(range(len(points)))
        med = [p.median_ms for p in points]
        low = [p.median_ms - (p.ci_low or p.median_ms) for p in points]
        high = [(p.ci_high or p.median_ms) - p.median_ms for p in points]
        ax.errorbar(x, med, yerr=[low, high], fmt="o-", ms=3, lw=1, capsize=2)
        for s in steps:
            ax.axvline(s.index - 0.5, color="tab:red", ls="--", lw=1)
            ax.annotate(f"{s.change:+.1%}", (s.index - 0.5, max(med)), color="tab:red", fontsize=8,
                        ha="left", va="top")
        ax.set_title(f"{ident['model']} / {ident['variant']} on {ident['target']}", fontsize=9)
        ax.set_ylabel("median ms")
        ticks = x[:: max(1, len(x) // 8)]
        ax.set_xticks(ticks)
        ax.set_xticklabels([points[i].time_utc[5:16].replace("T", " ") for i in ticks], fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    if args.last < 6:
        raise EdgebenchError("--last must be at least 6 (steps are looked for from 6 results on)")
    path = db_path(args)
    found = series(path, args.model, args.variant, args.target)
    if not found:
        raise EdgebenchError(f"no stored result in {path} matches --model {args.model or '*'} --variant "
                             f"{args.variant or '*'} --target {args.target or '*'}")
    groups = []
    for key, points in sorted(found.items()):
        lines, steps = describe(key, points, args.last)
        print("\n".join(lines))
        ok = _ok(points)[-args.last:]
        if ok:
            groups.append((key, ok, steps))
    n_steps = sum(len(s) for _, _, s in groups)
    print(f"{len(found)} identities, {n_steps} step change(s)")
    try:
        plot(args.plot, groups)
        print(f"plot: {args.plot}")
    except ImportError:
        print("plot: not drawn (matplotlib is in the full install: pip install edgebench)")
    return 0
