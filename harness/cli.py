"""The `edgebench` command (also `python -m harness`): parses the command line and turns errors into one
line and an exit code. Nothing else lives here: each subcommand's body is a module with
`configure(parser)` and `run(args)`, and only the module of the command that runs is imported, so
`bench`, `compare` and `doctor` never load torch or pandas.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from harness import __version__
from targets.errors import EdgebenchError

# (name, module, help). Also the order of `edgebench --help`.
COMMANDS = (
    ("run", "harness.run", "the main job: build, measure and report an experiment (default: built-in)"),
    ("compress", "export.cli", "build compressed ONNX variants of a PyTorch model"),
    ("bench", "harness.commands.bench", "measure ONNX files or artifact folders on a target"),
    ("compare", "harness.compare", "is B faster or slower than A, by how much, and how sure"),
    ("doctor", "harness.commands.doctor", "check a target: reachable, Python, numpy, onnxruntime, sensors"),
    ("report", "harness.commands.report", "(re)write DIR/report.md, report.html and the plots from the result files"),
    ("history", "harness.commands.history", "every stored result of a model over time, with its step changes"),
)

# Packages the light install (requirements-light.txt: bench, compare, doctor) leaves out: a command that
# needs one says how to get the full install.
FULL_INSTALL_ONLY = {"torch", "torchvision", "torch_pruning", "onnxsim", "sklearn", "onnxscript", "pandas",
                     "matplotlib"}

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention; SIGTERM gives 128 + 15


class Terminated(BaseException):
    """SIGTERM, raised where the main thread is, so it unwinds like Ctrl-C: targets close, results stay."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad flag as one line like every other error (not the usage block and then the error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (top-level flags take no value), or None."""
    names = {name for name, _, _ in COMMANDS}
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in names else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; every subcommand configured, or with `only`, just that one (the others keep their help;
    `only=""` configures none)."""
    parser = _Parser(
        prog="edgebench",
        description="Benchmark compressed ONNX variants of a model on this CPU or a remote board over SSH.",
    )
    parser.add_argument("--version", action="version", version=f"edgebench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        mod = importlib.import_module(module)
        description = (mod.__doc__ or help_text).strip().splitlines()[0]
        p = sub.add_parser(name, help=help_text, description=description)
        mod.configure(p)
        p.set_defaults(func=mod.run)
    return parser


def _os_error(exc: Exception) -> EdgebenchError | None:
    """An OSError about a file that no closer code explained (a full disk, a read-only folder): name the path."""
    if not isinstance(exc, OSError) or not exc.filename:
        return None
    fixes = {errno.ENOSPC: "free some space there or give another --out", errno.EDQUOT: "free some space there or "
             "give another --out", errno.EACCES: "make it writable or give another path", errno.EROFS: "the file "
             "system is read-only; give another path", errno.ENOENT: "check the path"}
    return EdgebenchError(f"{exc.filename}: {exc.strerror or exc}; {fixes.get(exc.errno, 'check the path')}")


def _missing_extra(exc: Exception, command: str | None) -> EdgebenchError | None:
    """A package of the compress extra that is not installed, as the one line that says how to get it."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    package = (exc.name or "").split(".")[0]
    if package in FULL_INSTALL_ONLY:
        return EdgebenchError(f"`edgebench {command or '--help'}` needs {package}, which this light install lacks "
                              "(it runs bench, compare and doctor): install edgebench with its dependencies "
                              "(pip install . or pip install edgebench, without --no-deps)")
    return None


def _handle_termination() -> dict[int, object]:
    """SIGTERM and SIGHUP unwind like Ctrl-C (main thread only: Python delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _on_sigterm) for signum in (signal.SIGTERM, signal.SIGHUP)}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = _chosen(argv)
    previous = _handle_termination()
    try:
        parser = build_parser(command or "")  # no command (`edgebench --help`): import none of them
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except (KeyboardInterrupt, Terminated) as exc:
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"error: {how}; what was measured is in the result folder (rerun with the same --out to resume)",
              file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line unless --debug
        known = exc if isinstance(exc, EdgebenchError) else _missing_extra(exc, command) or _os_error(exc)
        if debug:
            traceback.print_exc()
        if known is not None:
            print(f"error: {known}", file=sys.stderr)
            return known.exit_code
        print(f"error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
