"""`edgebench report DIR`: rebuild DIR's result files from its journal, then (re)write report.md, report.html and
the plots (and, with --mlflow, log the folder's rows that are not in MLflow yet)."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    from harness.tracking import add_mlflow_options

    p.add_argument("dir", type=Path, metavar="DIR", help="a result folder")
    add_mlflow_options(p)


def run(args: argparse.Namespace) -> int:
    from harness.report import write_report
    from harness.runfolder import held_for_report

    with held_for_report(args.dir):  # summary, samples, pyperf and machine files rebuilt from the journal
        path = write_report(args.dir)
    print(f"report: {path}")
    from harness.tracking import log_if_asked

    return log_if_asked(args, args.dir)
