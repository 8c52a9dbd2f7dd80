"""Turn a target spec from the command line or an experiment file into a Target."""

from __future__ import annotations

import argparse
from pathlib import Path

from targets.errors import EdgebenchError
from targets.base import Target
from targets.local import LocalTarget


def make_target(spec: str, *, ssh_config: Path | None = None, accept_new_host_key: bool = False,
                python: str | None = None) -> Target:
    """`local`, `ssh://[user@]host[:port]`, or a bare Host alias from the ssh config."""
    spec = spec.strip()
    if not spec:
        raise EdgebenchError("an empty --target; use local, ssh://user@host[:port] or a Host alias")
    if spec == "local":
        return LocalTarget(python=python)
    try:
        from targets.ssh import SshTarget
    except ImportError as exc:
        raise EdgebenchError(f"--target {spec}: SSH targets are not available in this build ({exc})") from None
    return SshTarget(spec, ssh_config=ssh_config, accept_new_host_key=accept_new_host_key, python=python)


def add_connection_options(p: argparse.ArgumentParser) -> None:
    """How to reach a target: the flags every command that runs on targets shares."""
    p.add_argument("--ssh-config", type=Path, metavar="FILE", help="use this ssh config file instead of ~/.ssh/config")
    p.add_argument("--accept-new-host-key", action="store_true",
                   help="trust a host seen for the first time (a changed key is always refused)")
    p.add_argument("--python", metavar="PATH",
                   help="Python interpreter to run the runner with on the target (another venv, or a wrapper "
                        "that runs it under an emulated CPU)")


def target_from_args(spec: str, args: argparse.Namespace) -> Target:
    """``make_target`` with the connection flags of ``add_connection_options``."""
    return make_target(spec, ssh_config=args.ssh_config, accept_new_host_key=args.accept_new_host_key,
                       python=args.python)
