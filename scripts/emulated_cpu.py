#!/usr/bin/env python3
"""Write an interpreter wrapper that runs Python under user-mode QEMU presenting another x86-64 CPU.

INT8 accuracy depends on the CPU's integer kernels (onnxruntime's U8S8 kernels saturate on x86 without
VNNI), so a file that holds on this machine may not hold on a user's. With the wrapper as the runner's
interpreter, edgebench measures on an emulated CPU model such as Haswell (AVX2, no VNNI):

    python scripts/emulated_cpu.py --cpu Haswell haswell-python
    edgebench bench artifacts/fp32+int8 --data artifacts/data.npz --python ./haswell-python
    edgebench compress ... --variants fp32+int8 --int8-select-on local --python ./haswell-python

QEMU's TCG emulates instructions, not timing: accuracy and CPU features are the emulated CPU's,
latencies are not (expect 10-100x slower). Needs qemu-user-static (Debian package of that name).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


def qemu_binary() -> str:
    for name in ("qemu-x86_64-static", "qemu-x86_64"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("error: qemu-x86_64 not found; install it with: apt-get install qemu-user-static")


def cpu_option(qemu: str, cpu: str) -> str:
    """The -cpu value with the model's features that TCG cannot provide switched off (QEMU warns about
    each one on every start otherwise)."""
    probe = subprocess.run([qemu, "-cpu", cpu, "/bin/true"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise SystemExit(f"error: qemu cannot emulate CPU {cpu!r}: {last} (list them: {qemu} -cpu help)")
    missing = sorted(set(re.findall(r"doesn't support requested feature: \S+?\.([\w-]+) \[bit", probe.stderr)))
    return ",".join([cpu, *(f"-{m}" for m in missing)])


def write_wrapper(out: Path, cpu: str, python: str) -> Path:
    qemu = qemu_binary()
    out.write_text("#!/bin/sh\n# edgebench: run Python on an emulated %s CPU (scripts/emulated_cpu.py)\n"
                   "exec %s -cpu %s %s \"$@\"\n" % (cpu, shlex.quote(qemu), shlex.quote(cpu_option(qemu, cpu)),
                                                   shlex.quote(python)))
    out.chmod(0o755)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the wrapper file to write")
    p.add_argument("--cpu", default="Haswell", help="QEMU x86-64 CPU model (default Haswell: AVX2, no VNNI)")
    p.add_argument("--python", default=sys.executable, help="the interpreter to wrap (default: this one)")
    args = p.parse_args(argv)
    print(write_wrapper(args.out, args.cpu, str(Path(args.python).absolute())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
