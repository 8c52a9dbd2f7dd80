"""`edgebench doctor [--target T] [--provision]`: check a target and print the fix for each missing piece."""

from __future__ import annotations

import argparse
import sys

from harness.options import add_target_options, targets_from

EXIT_NOT_READY = 1


def configure(p: argparse.ArgumentParser) -> None:
    add_target_options(p, measures=False)  # doctor only looks: it does not take the board
    p.add_argument("--provision", action="store_true",
                   help="create ~/.cache/edgebench/venv on the target and pip install numpy and onnxruntime")


def run(args: argparse.Namespace) -> int:
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
        return EXIT_NOT_READY
    return 0
