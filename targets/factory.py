"""Turn a target spec from the command line or an experiment file into a Target."""

from __future__ import annotations

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
