"""The `edgebench` command (also `python -m harness`). The only place errors become messages and exit codes."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.options import add_measure_options, add_target_options, run_spec_from, targets_from
from targets.errors import EdgebenchError

# Subcommands that live beside the code they drive: each module has configure(parser) and run(args).
SUBCOMMAND_MODULES = [
    ("run", "harness.run", "the main job: build, measure and report an experiment (default: built-in)"),
    ("compress", "export.cli", "build compressed ONNX variants of a PyTorch model"),
    ("compare", "harness.compare", "is B faster or slower than A, by how much, and how sure"),
]

EXIT_MEASUREMENT_FAILED = 1
EXIT_INTERRUPTED = 130


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import load_items, measure
    from harness.console import Progress, format_summary
    from harness.results import ResultsWriter, new_run_id
    from harness.resume import RunState

    spec = run_spec_from(args)
    targets = targets_from(args)
    run_id = new_run_id()
    out = args.out or Path("results") / run_id
    progress = Progress(args.quiet)
    items = load_items(args.models)
    state = RunState(out)  # an earlier, interrupted bench into the same --out resumes
    state.drop_failed()
    writer = ResultsWriter(out)
    progress(f"run {run_id}: {len(items)} model(s) x {len(targets)} target(s) x {spec.processes} processes -> {out}")
    outcomes = measure(items, targets, spec, writer, run_id, progress, seed=args.seed,
                       done=state.done(spec), journal_runs=state.journal_runs(spec))
    rows = [r for o in outcomes for r in o.rows]
    if not rows and items:
        print(f"everything is already measured in {out} (remove it or give another --out to measure again)")
        return 0
    if any(r.status == "ok" for r in rows):
        print("\n".join(format_summary(rows)))
        print(f"results: {out}")
    return _report_failures(rows)


def cmd_doctor(args: argparse.Namespace) -> int:
    from targets.doctor import doctor, format_checks, provision

    failed = False
    for target in targets_from(args):
        print(f"target {target.name}:")
        # Not `with target`: open() refuses a board without onnxruntime, which is exactly the board
        # doctor must describe and --provision must fix; doctor() and provision() connect themselves.
        try:
            if args.provision:
                print(f"  {provision(target)}")
            checks = doctor(target)
        finally:
            target.close()
        print("\n".join("  " + line for line in format_checks(checks)))
        failed |= any(c.required and not c.ok for c in checks)
    if failed:
        print("error: a target is not ready; run the fixes listed above", file=sys.stderr)
        return EXIT_MEASUREMENT_FAILED
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import write_report

    path = write_report(args.dir)
    print(f"report: {path}")
    return 0


def _report_failures(rows: Sequence) -> int:
    failed = [r for r in rows if r.status != "ok"]
    if not failed:
        return 0
    first = failed[0]
    where = f"{first.variant} on {first.target}"
    more = f" ({len(failed)} of {len(rows)} measurements failed; the rest are in the results)" if len(rows) > 1 else ""
    print(f"error: {where}: {first.error}{more}", file=sys.stderr)
    return EXIT_MEASUREMENT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgebench",
        description="Benchmark compressed ONNX variants of a model on this CPU or a remote board over SSH.",
    )
    parser.add_argument("--version", action="version", version=f"edgebench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("bench", help="measure ONNX files or artifact folders on a target",
                       description="Measure ONNX models or artifact folders; write summary.csv, samples.csv, "
                                   "machine.json and pyperf.json.")
    p.add_argument("models", nargs="+", type=Path, metavar="MODEL", help="MODEL.onnx or ARTIFACT_DIR")
    p.add_argument("--out", type=Path, metavar="DIR", help="result folder (default results/<run-id>)")
    add_target_options(p)
    add_measure_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("doctor", help="check a target: reachable, Python, numpy, onnxruntime, sensors",
                       description="Check a target and say what to install or fix; --provision installs numpy "
                                   "and onnxruntime into a virtual environment on the board.")
    add_target_options(p)
    p.add_argument("--provision", action="store_true",
                   help="create ~/.cache/edgebench/venv on the target and pip install numpy and onnxruntime")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("report", help="(re)write DIR/report.md and its plots from the result files",
                       description="(Re)write DIR/report.md and its PNG plots from summary.csv and samples.csv.")
    p.add_argument("dir", type=Path, metavar="DIR", help="a result folder")
    p.set_defaults(func=cmd_report)

    for name, module, help_text in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency inside the module is a real error
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip().splitlines()[0])
        mod.configure(p)
        p.set_defaults(func=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgebenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; what was measured is in the result folder (rerun with the same --out to resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
