"""Command-line options shared by several subcommands (bench, run, compare, doctor) and what they build:
argument types, the target and measurement flag groups, a RunSpec and Target objects from parsed flags."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from targets.errors import EdgebenchError


def positive_float(text: str) -> float:
    """A finite number >= 0 (nan and inf are refused: a loop bounded by them never ends)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    parts = [d.strip() for d in dims.split(",")]
    placeholders = [d for d in parts if d and not d.lstrip("-").isdigit()]
    if sep and name and placeholders and all(d.replace("_", "").isalnum() for d in placeholders):
        raise argparse.ArgumentTypeError(f"--shape {text!r}: put a whole number, the size to measure, in place of "
                                         f"{', '.join(placeholders)} (NAME=D0,D1,...)")
    try:
        values = tuple(int(d) for d in parts)
    except ValueError:
        values = ()
    if not sep or not name or not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"--shape {text!r}: write NAME=D0,D1,... e.g. input=1,3,224,224")
    return name, values


def cores_arg(text: str) -> tuple[int, ...]:
    """`0`, `0,1`, `0-3`: core numbers; a range must run upwards (`5-2` pinned to nothing before)."""
    cores: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise argparse.ArgumentTypeError(f"--cpu {text!r}: write cores like 0 or 0,1 or 0-3")
        if dash and int(hi) < int(lo):
            raise argparse.ArgumentTypeError(f"--cpu {text!r}: the range {part.strip()} runs backwards; "
                                             f"write {hi}-{lo}")
        cores.update(range(int(lo), int(hi if dash else lo) + 1))
    return tuple(sorted(cores))


def check_cores(cores: tuple[int, ...], targets: list) -> None:
    """--cpu must name cores this machine lets us use when a target is local (a board's runner checks its own)."""
    if not cores or not any(t.name == "local" for t in targets) or not hasattr(os, "sched_getaffinity"):
        return
    usable = sorted(os.sched_getaffinity(0))
    missing = [c for c in cores if c not in usable]
    if missing:
        raise EdgebenchError(f"--cpu {','.join(map(str, cores))}: core {missing[0]} is not one this machine lets "
                             f"edgebench use ({_ranges(usable)}); pick among those")


def _ranges(cores: list[int]) -> str:
    """0,1,2,5 -> '0-2,5'."""
    parts: list[str] = []
    for c in cores:
        if parts and int(parts[-1].split("-")[-1]) == c - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{c}"
        else:
            parts.append(str(c))
    return ",".join(parts)
def streams_arg(text: str) -> tuple:
    from harness.streams import parse_streams

    try:
        return parse_streams(text)
    except EdgebenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_target_options(p: argparse.ArgumentParser, measures: bool = True) -> None:
    """--target and how to reach it; `measures`: the command measures there, so it takes the board's lock."""
    from targets.factory import add_connection_options

    p.add_argument("--target", action="append", metavar="T",
                   help="local (default), ssh://[user@]host[:port] or a Host alias from ~/.ssh/config; repeatable")
    add_connection_options(p, measures=measures)


def add_measure_options(p: argparse.ArgumentParser) -> None:
    """Flags that shape a measurement (shared by bench and run); their defaults are RunSpec's."""
    from harness.measurement import RunSpec
    from harness.streams import STREAM_SESSIONS, STREAMS_HELP

    d = RunSpec()
    p.add_argument("--threads", type=int, metavar="N", help="onnxruntime intra-op threads (default: its own)")
    p.add_argument("--batch", type=int, default=d.batch_size, metavar="N",
                   help=f"batch size for symbolic batch axes ({d.batch_size})")
    p.add_argument("--processes", type=int, default=d.processes, metavar="N",
                   help=f"fresh runner processes per model and target ({d.processes}): the process is the unit "
                        "of noise")
    p.add_argument("--precision", type=positive_float, default=d.precision, metavar="P",
                   help="stop when the answer is known: after --processes, add fresh processes until the "
                        "median's 95%% interval is within +-P of it (0.01: about +-1%%) or --max-processes")
    p.add_argument("--max-processes", type=int, default=d.max_processes, metavar="N",
                   help=f"the most processes --precision may take per model and target ({d.max_processes})")
    p.add_argument("--min-time", type=positive_float, default=d.min_time_s, metavar="S",
                   help=f"timed seconds per process ({d.min_time_s:g})")
    p.add_argument("--max-time", type=positive_float, default=d.max_time_s, metavar="S",
                   help=f"cap per process ({d.max_time_s:g})")
    p.add_argument("--min-iterations", type=int, default=d.min_iterations, metavar="N",
                   help=f"timed calls per process, at least ({d.min_iterations})")
    p.add_argument("--max-iterations", type=int, default=d.max_iterations, metavar="N",
                   help=f"timed calls per process, at most ({d.max_iterations})")
    p.add_argument("--timeout", type=positive_float, default=d.timeout_s, metavar="S",
                   help=f"stop a runner process after this long ({d.timeout_s:g})")
    add_input_options(p)
    p.add_argument("--streams", type=streams_arg, metavar="N[,N...]", help=STREAMS_HELP)
    p.add_argument("--stream-sessions", choices=STREAM_SESSIONS, default=STREAM_SESSIONS[0],
                   help="with --streams: a session per stream (separate, default) or one shared by all")
    p.add_argument("--cpu", type=cores_arg, default=(), metavar="CORES", help="pin runner processes to cores, e.g. 1 or 0-1")
    add_provider_option(p)
    p.add_argument("--seed", type=int, default=d.seed, help="random inputs and schedule order")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines (for CI logs)")


def add_provider_option(p: argparse.ArgumentParser) -> None:
    from harness.providers import PROVIDER_HELP

    p.add_argument("--provider", action="append", default=[], metavar="NAME[:key=value,...]", help=PROVIDER_HELP)


def add_input_options(p: argparse.ArgumentParser) -> None:
    """Flags that give the model's inputs their sizes and values (shared by bench and compare)."""
    from harness.inputs import VALUE_HELP

    p.add_argument("--data", type=Path, metavar="D.npz",
                   help="arrays named after the model's inputs (x for a one-input model) feed the timed calls; "
                        "labels y add accuracy")
    p.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                   help=f"the value of one input: {VALUE_HELP} (integer, bool and scalar inputs need one); "
                        "repeatable")
    p.add_argument("--shape", type=shape_arg, action="append", default=[], metavar="NAME=D0,D1,...",
                   help="size of an input with symbolic dimensions; repeatable")


def output_folder(path: Path, flag: str = "--out") -> Path:
    """The folder results go to, created now: a file in its place or a folder that cannot be made is one line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EdgebenchError(f"{flag} {path} is a file; give a folder (a new one, or an earlier result folder to "
                             "resume)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgebenchError(f"{flag} {path}: cannot create the folder ({exc.strerror}); give a folder you can "
                             "write to") from None
    return path


def inputs_from(args: argparse.Namespace) -> tuple[Path | None, tuple]:
    """The checked --data file and --input values."""
    from harness.inputs import parse_inputs

    data = args.data
    if data is not None and not data.is_file():
        raise EdgebenchError(f"--data {data}: no such file; give an .npz with arrays named after the model's "
                             "inputs (or x) and labels y")
    return data, parse_inputs(args.input)


def run_specs_from(args: argparse.Namespace) -> list:
    """The RunSpecs the measurement flags ask for: one, or one per --streams value."""
    from dataclasses import replace

    from harness.measurement import RunSpec
    from harness.providers import parse_providers

    data, values = inputs_from(args)
    spec = RunSpec(
        batch_size=args.batch, threads=args.threads, processes=args.processes, min_time_s=args.min_time,
        max_time_s=max(args.max_time, args.min_time), min_iterations=args.min_iterations,
        max_iterations=max(args.max_iterations, args.min_iterations), timeout_s=args.timeout,
        shapes=tuple(args.shape), cpu_affinity=tuple(args.cpu), data=data, seed=args.seed, inputs=values,
        providers=parse_providers(args.provider), precision=args.precision, max_processes=args.max_processes,
        stream_sessions=args.stream_sessions,
    )
    return [replace(spec, streams=n) for n in args.streams] if args.streams else [spec]


def targets_from(args: argparse.Namespace) -> list:
    from targets.factory import target_from_args

    names = args.target or ["local"]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise EdgebenchError(f"--target {sorted(dupes)[0]} is given twice; name each target once")
    targets = [target_from_args(n, args) for n in names]
    check_cores(tuple(getattr(args, "cpu", ()) or ()), targets)
    return targets
