"""The `edgebench` command (also `python -m harness`). The only place errors become messages and exit codes."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.errors import EdgebenchError

# Subcommands that live beside the code they drive: each module has configure(parser) and run(args).
SUBCOMMAND_MODULES = [
    ("run", "harness.run", "the main job: build, measure and report an experiment (default: built-in)"),
    ("compress", "export.cli", "build compressed ONNX variants of a PyTorch model"),
    ("compare", "harness.compare", "is B faster or slower than A, by how much, and how sure"),
]

EXIT_MEASUREMENT_FAILED = 1
EXIT_INTERRUPTED = 130


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    try:
        values = tuple(int(d) for d in dims.split(","))
    except ValueError:
        values = ()
    if not sep or not name or not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"--shape {text!r}: write NAME=D0,D1,... e.g. input=1,3,224,224")
    return name, values


def _cores(text: str) -> tuple[int, ...]:
    try:
        cores: set[int] = set()
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cores.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cpu {text!r}: write cores like 0 or 0,1 or 0-3") from None
    return tuple(sorted(cores))


def add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", action="append", metavar="T",
                   help="local (default), ssh://[user@]host[:port] or a Host alias from ~/.ssh/config; repeatable")
    p.add_argument("--ssh-config", type=Path, metavar="FILE", help="use this ssh config file instead of ~/.ssh/config")
    p.add_argument("--accept-new-host-key", action="store_true",
                   help="trust a host seen for the first time (a changed key is always refused)")
    p.add_argument("--python", metavar="PATH", help="Python interpreter to run the runner with on the target")


def add_measure_options(p: argparse.ArgumentParser) -> None:
    """Flags that shape a measurement (shared by bench and run)."""
    p.add_argument("--threads", type=int, metavar="N", help="onnxruntime intra-op threads (default: its own)")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="batch size for symbolic batch axes (1)")
    p.add_argument("--processes", type=int, default=5, metavar="N",
                   help="fresh runner processes per model and target (5): the process is the unit of noise")
    p.add_argument("--min-time", type=_positive_float, default=1.0, metavar="S", help="timed seconds per process (1)")
    p.add_argument("--max-time", type=_positive_float, default=30.0, metavar="S", help="cap per process (30)")
    p.add_argument("--min-iterations", type=int, default=20, metavar="N", help="timed calls per process, at least")
    p.add_argument("--max-iterations", type=int, default=10_000, metavar="N",
                   help="timed calls per process, at most (10000)")
    p.add_argument("--timeout", type=_positive_float, default=120.0, metavar="S",
                   help="stop a runner process after this long (120)")
    p.add_argument("--shape", type=_shape, action="append", default=[], metavar="NAME=D0,D1,...",
                   help="size of an input with symbolic dimensions; repeatable")
    p.add_argument("--cpu", type=_cores, default=(), metavar="CORES", help="pin runner processes to cores, e.g. 1 or 0-1")
    p.add_argument("--seed", type=int, default=0, help="random inputs and schedule order")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines (for CI logs)")


def run_spec_from(args: argparse.Namespace, data: Path | None = None):
    from harness.measurement import RunSpec

    return RunSpec(
        batch_size=args.batch, threads=args.threads, processes=args.processes, min_time_s=args.min_time,
        max_time_s=max(args.max_time, args.min_time), min_iterations=args.min_iterations,
        max_iterations=max(args.max_iterations, args.min_iterations), timeout_s=args.timeout,
        shapes=tuple(args.shape), cpu_affinity=tuple(args.cpu), data=data, seed=args.seed,
    )


def targets_from(args: argparse.Namespace) -> list:
    from targets.factory import make_target

    names = args.target or ["local"]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise EdgebenchError(f"--target {sorted(dupes)[0]} is given twice; name each target once")
    return [make_target(n, ssh_config=args.ssh_config, accept_new_host_key=args.accept_new_host_key,
                        python=args.python) for n in names]


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import load_items, measure
    from harness.console import Progress, format_summary
    from harness.results import ResultsWriter, new_run_id
    from harness.resume import RunState

    data = args.data
    if data is not None and not data.is_file():
        raise EdgebenchError(f"--data {data}: no such file; give an .npz with arrays x and y")
    spec = run_spec_from(args, data)
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
    p.add_argument("--data", type=Path, metavar="D.npz", help="inputs x and labels y: also measure accuracy")
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
