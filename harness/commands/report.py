"""`edgebench report DIR`: (re)write DIR/report.md and its PNG plots from the result files."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, metavar="DIR", help="a result folder")


def run(args: argparse.Namespace) -> int:
    from harness.report import write_report

    print(f"report: {write_report(args.dir)}")
    return 0
