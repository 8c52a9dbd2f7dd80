"""`edgebench doctor`: is a target usable, and the exact command that fixes each missing piece.

`doctor(target)` returns checks (data); `format_checks` turns them into lines; the CLI prints them.
`provision(target)` makes a virtual environment on the board in ~/.cache/edgebench/venv with numpy and
onnxruntime from pip; SshTarget then runs the runner with that interpreter.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from targets.errors import TargetError
from targets.base import Target
from targets.cpu import int8_kernels
from targets.ssh import MIN_PYTHON, REMOTE_CACHE, SshError, SshTarget, forget_key_command

PROVISION_PACKAGES = ("numpy", "onnxruntime")


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report. `required` False: a warning (the run works, with less data)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _version(text: str | None) -> tuple[int, ...]:
    parts = []
    for piece in (text or "").split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _connection_checks(target: Target) -> tuple[list[Check], bool]:
    if not isinstance(target, SshTarget):
        return [Check("reachable", True, f"{target.name}: this machine")], True
    try:
        target.connect()
    except SshError as exc:
        if exc.kind in ("login", "hostkey", "hostkey_changed"):
            return [Check("reachable", True, target.name), Check("login", False, str(exc), _login_fix(target, exc))], False
        return [Check("reachable", False, str(exc), f"ssh -v {shlex.quote(target.name)}  # to see where it fails")], False
    except TargetError as exc:
        return [Check("reachable", False, str(exc))], False
    return [Check("reachable", True, target.where()), Check("login", True, f"as {target.destination()['user']}")], True


def _login_fix(target: SshTarget, exc: SshError) -> str:
    d = target.destination()
    if exc.kind == "hostkey_changed":  # never suggest --accept-new-host-key here: it cannot and must not help
        return (f"{forget_key_command(d)}; then ssh {shlex.quote(target.name)}   # only if you trust the change: "
                "check the new fingerprint")
    if exc.kind == "hostkey":
        return f"ssh {shlex.quote(target.name)}   # check and accept the host key once, or --accept-new-host-key"
    return f"ssh-copy-id -p {d['port']} {shlex.quote(d['user'] + '@' + d['hostname'])}"


def doctor(target: Target, timeout: float = 60.0) -> list[Check]:
    """Check a target: reachable, login, Python >= 3.9, numpy, onnxruntime, arch, sensors."""
    checks, connected = _connection_checks(target)
    if not connected:
        return checks
    try:
        doc = target.probe(timeout)
    except TargetError as exc:
        return checks + [Check("python", False, str(exc), _provision_cmd(target))]
    if doc.get("status") != "ok" or not doc.get("machine"):
        return checks + [Check("python", False, f"the probe failed: {doc.get('error')}", _provision_cmd(target))]
    m: dict[str, Any] = doc["machine"]
    exe = m.get("python_executable") or "python3"
    venv_hint = _provision_cmd(target)
    py_ok = _version(m.get("python")) >= MIN_PYTHON
    checks.append(Check("python", py_ok, f"{m.get('python')} at {exe}",
                        "" if py_ok else "sudo apt install python3   # or --python /path/to/python3.9+"))  # fmt: skip
    for module in ("numpy", "onnxruntime"):
        version = m.get(module)
        detail = version or m.get(f"{module}_error") or "not installed"
        fix = "" if version else m.get(f"{module}_fix") or f"{venv_hint}   # or: {exe} -m pip install {module}"
        checks.append(Check(module, bool(version), f"{detail}" + (f" ({exe})" if version else ""), fix))
    if m.get("onnxruntime"):
        offered = m.get("providers") or []
        checks.append(Check("providers", bool(offered), ", ".join(offered) or "onnxruntime offers none",
                            "" if offered else f"{exe} -m pip install --force-reinstall onnxruntime"))
    arch = m.get("arch") or "unknown"
    cpu = f"{m.get('cpu_model')}" + (f" (emulated: {m['cpu_emulated']})" if m.get("cpu_emulated") else "")
    checks.append(Check("arch", bool(m.get("arch")), f"{arch}, {cpu}, {m.get('cores')} cores, "
                                                    f"{m.get('ram_mb')} MB RAM, {m.get('os')}"))  # fmt: skip
    checks.append(Check("cpu features", m.get("cpu_features") is not None, int8_kernels(m), required=False))
    tel = doc.get("telemetry_start") or {}
    temp = tel.get("temp_c")
    checks.append(Check("temperature", temp is not None,
                        f"{temp:.1f} °C" if temp is not None else "no sensor (vcgencmd or /sys/class/thermal)",
                        "" if temp is not None else "on a Raspberry Pi: sudo apt install libraspberrypi-bin",
                        required=False))  # fmt: skip
    throttle = tel.get("throttle")
    checks.append(Check("throttle flags", throttle is not None,
                        f"{throttle['raw']} {', '.join(throttle['flags']) or 'none'}" if throttle
                        else "vcgencmd get_throttled not available: throttling will not be recorded",
                        "" if throttle else "on a Raspberry Pi: sudo apt install libraspberrypi-bin",
                        required=False))  # fmt: skip
    governor = m.get("governor")
    checks.append(Check("cpu governor", governor in (None, "performance"),
                        governor or "not exposed",
                        "" if governor in (None, "performance") else
                        "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
                        required=False))  # fmt: skip
    return checks


def _provision_cmd(target: Target) -> str:
    if isinstance(target, SshTarget):
        return f"edgebench doctor --target {shlex.quote(target.name)} --provision"
    return "pip install numpy onnxruntime"


def format_checks(checks: list[Check]) -> list[str]:
    """One line per check (`ok`, `FAIL` or `warn`) and an indented `fix:` line under each failure."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        lines.append(f"{mark}  {c.name.ljust(width)}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"      {' ' * width}  fix: {c.fix}")
    return lines


def provision(target: Target, packages: tuple[str, ...] | list[str] = PROVISION_PACKAGES,
              python: str = "python3", timeout: float = 1800.0, venv: str = "venv") -> str:  # fmt: skip
    """Create ~/.cache/edgebench/VENV on the board and pip install `packages`; returns pip's last lines.

    A Pi 4 needs several minutes for this (wheels of ~20 MB over Wi-Fi), hence the long timeout. Another
    `venv` name keeps a second onnxruntime build beside the default one (e.g. onnxruntime-openvino,
    which replaces the onnxruntime package); pass its bin/python as --python.
    """
    if not isinstance(target, SshTarget):
        raise TargetError(f"provision is for remote boards; for {target.name} run: pip install numpy onnxruntime")
    target.connect()
    venv = f"{target.cache_dir}/{venv}"
    q = shlex.quote
    script = (
        f"set -e; mkdir -p {q(target.cache_dir)}; "
        f"[ -x {q(venv + '/bin/python')} ] || {q(python)} -m venv {q(venv)}; "
        f"{q(venv + '/bin/python')} -m pip install --disable-pip-version-check --no-input --upgrade "
        + " ".join(q(p) for p in packages)
    )
    proc = target.shell(script, timeout=timeout)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        if "ensurepip is not available" in text or "No module named venv" in text:
            raise TargetError(f"{target.name}: Python's venv module is missing on the board: "
                              "sudo apt install python3-venv, then provision again")  # fmt: skip
        if "no space left" in text.lower():
            raise TargetError(f"the disk of {target.name} is full: free space in ~/{REMOTE_CACHE} (pip needs ~300 MB)")
        tail = " | ".join(line for line in text.strip().splitlines()[-3:])
        raise TargetError(f"provisioning {target.name} failed (exit code {proc.returncode}): {tail}")
    return "\n".join(proc.stdout.strip().splitlines()[-2:])
