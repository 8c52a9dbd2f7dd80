"""Turn a target spec from the command line or an experiment file into a Target."""

from __future__ import annotations

import argparse
from pathlib import Path

from targets.errors import EdgebenchError
from targets.base import Target
from targets.boardlock import DEFAULT_LOCK_TIMEOUT_S
from targets.local import LocalTarget


def make_target(spec: str, *, ssh_config: Path | None = None, accept_new_host_key: bool = False,
                python: str | None = None, lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT_S) -> Target:
    """`local`, `ssh://[user@]host[:port]`, or a bare Host alias from the ssh config."""
    spec = spec.strip()
    if not spec:
        raise EdgebenchError("an empty --target; use local, ssh://user@host[:port] or a Host alias")
    target: Target
    if spec == "local":
        target = LocalTarget(python=python)
    else:
        try:
            from targets.ssh import SshTarget
        except ImportError as exc:
            raise EdgebenchError(f"--target {spec}: SSH targets are not available in this build ({exc})") from None
        target = SshTarget(spec, ssh_config=ssh_config, accept_new_host_key=accept_new_host_key, python=python)
    target.lock_timeout_s = lock_timeout
    return target


def lock_timeout(text: str) -> float | None:
    """--lock-timeout: seconds (0: do not wait), or `none` for no limit."""
    if text.strip().lower() in ("none", "inf", "never"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0 (or none: wait without limit)")
    return value


def add_connection_options(p: argparse.ArgumentParser, measures: bool = True) -> None:
    """How to reach a target: the flags every command that runs on targets shares (and, for one that
    `measures` there, how long it waits for the board)."""
    p.add_argument("--ssh-config", type=Path, metavar="FILE", help="use this ssh config file instead of ~/.ssh/config")
    p.add_argument("--accept-new-host-key", action="store_true",
                   help="trust a host seen for the first time (a changed key is always refused)")
    p.add_argument("--python", metavar="PATH",
                   help="Python interpreter to run the runner with on the target (another venv, or a wrapper "
                        "that runs it under an emulated CPU)")
    if not measures:
        return
    p.add_argument("--lock-timeout", type=lock_timeout, default=DEFAULT_LOCK_TIMEOUT_S, metavar="S",
                   help="one measurement per board at a time: wait at most S seconds for a board another "
                        f"edgebench is measuring on (default {DEFAULT_LOCK_TIMEOUT_S:g}; 0: do not wait; none: no "
                        "limit)")


def target_from_args(spec: str, args: argparse.Namespace) -> Target:
    """``make_target`` with the connection flags of ``add_connection_options``."""
    return make_target(spec, ssh_config=args.ssh_config, accept_new_host_key=args.accept_new_host_key,
                       python=args.python, lock_timeout=getattr(args, "lock_timeout", DEFAULT_LOCK_TIMEOUT_S))
