"""Subcommand bodies that have no other home: each module has `configure(parser)` and `run(args) -> exit code`.

The commands that own a job keep their body beside it: `run` in harness/run.py, `compare` in
harness/compare.py, `compress` in export/cli.py. harness/cli.py lists them all and imports only the one
that runs, so `bench`, `compare` and `doctor` never load torch or pandas.
"""
