"""`edgebench bench MODEL ...`: measure ONNX files or artifact folders on targets and write the result files."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from harness.history import add_db_options, record_folder
from harness.tracking import add_mlflow_options, log_if_asked
from harness.options import add_measure_options, add_target_options, output_folder, run_specs_from, targets_from

EXIT_MEASUREMENT_FAILED = 1


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", type=Path, metavar="MODEL", help="MODEL.onnx or ARTIFACT_DIR")
    p.add_argument("--out", type=Path, metavar="DIR", help="result folder (default results/<run-id>)")
    add_target_options(p)
    add_measure_options(p)
    p.add_argument("--baseline-from-history", action="store_true",
                   help="compare each result with the last stored result of the same model, variant, target and "
                        "settings in the results database (separate runs: a stored-result comparison)")
    add_db_options(p)
    add_mlflow_options(p)


def run(args: argparse.Namespace) -> int:
    from harness.bench import load_items, measure
    from harness.console import Progress, format_summary
    from harness.inputs import check_data
    from harness.results import new_run_id
    from harness.runfolder import RunFolder

    specs = run_specs_from(args)
    spec = specs[0]
    targets = targets_from(args)
    run_id = new_run_id()
    out = args.out or Path("results") / run_id
    progress = Progress(args.quiet)
    items = load_items(args.models)
    if spec.data is not None:
        check_data(spec.data, items)
    output_folder(out)  # after every check: a refused command leaves no empty folder behind
    sweep = f" x {len(specs)} stream counts" if len(specs) > 1 else ""
    rows = []
    with RunFolder(out, progress) as folder:  # an earlier, interrupted bench into the same --out resumes
        progress(f"run {run_id}: {len(items)} model(s) x {len(targets)} target(s){sweep} x {spec.processes} "
                 f"processes -> {out}")
        try:
            for spec in specs:  # a --streams sweep: one stream count after the other, each interleaved over models
                outcomes = measure(items, targets, spec, folder, run_id, progress, seed=args.seed)
                rows += [r for o in outcomes for r in o.rows]
        finally:
            progress.close()  # the bars end before the summary table prints
    if not rows and items:
        print(f"everything is already measured in {out} (remove it or give another --out to measure again)")
        return 0
    if any(r.status == "ok" for r in rows):
        print("\n".join(format_summary(rows)))
        print(f"results: {out}")
    if args.baseline_from_history:
        compare_with_history(args, out)
    record_folder(args, "bench", out)
    logged = log_if_asked(args, out)
    return report_failures(rows) or logged


def compare_with_history(args: argparse.Namespace, out: Path) -> None:
    """--baseline-from-history: comparison.csv in the bench folder, and the verdicts printed."""
    from harness import history
    from harness.compare import COMPARISON_CSV, format_comparisons, write_comparison_csv

    path = history.db_path(args)
    rows = history.compare_with_history(path, out, threshold=0.02)
    if not rows:
        print(f"baseline from history: no earlier result of these measurements in {path}")
        return
    print(f"baseline from history ({path}): each result against the last stored run of the same model, variant, "
          "target and settings; separate runs, not interleaved")
    print("\n".join(format_comparisons(rows)))
    for w in sorted({w for r in rows for w in r.warnings.split(" | ") if w}):
        print(f"warning: {w}")
    write_comparison_csv(out / COMPARISON_CSV, rows)
    print(f"comparison: {out / COMPARISON_CSV}")


def report_failures(rows: Sequence) -> int:
    """The first failed row as the one `error:` line (the rest are in the results); the exit code."""
    import sys

    failed = [r for r in rows if r.status != "ok"]
    if not failed:
        return 0
    first = failed[0]
    where = f"{first.variant} on {first.target}"
    more = f" ({len(failed)} of {len(rows)} measurements failed; the rest are in the results)" if len(rows) > 1 else ""
    print(f"error: {where}: {first.error}{more}", file=sys.stderr)
    return EXIT_MEASUREMENT_FAILED
