"""`edgebench report DIR`: rebuild DIR's result files from its journal, then (re)write report.md and its plots."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, metavar="DIR", help="a result folder")


def run(args: argparse.Namespace) -> int:
    from harness.report import write_report
    from harness.runfolder import held_for_report

    with held_for_report(args.dir):  # summary, samples, pyperf and machine files rebuilt from the journal
        path = write_report(args.dir)
    print(f"report: {path}")
    return 0
