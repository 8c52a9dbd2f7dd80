"""Run an experiment end to end: build variants, measure them on every target, write results and a report.

Everything is validated before any long work starts (experiment file, variant specs, model specs,
data, targets reachable), so a typo or an unreachable board fails in seconds, not after training.
Rerunning with the same output folder resumes: artifacts are reused by recipe and sha256, finished
measurements are skipped, interrupted ones continue from their journaled processes, failed ones are
redone.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from harness.bench import BenchItem, load_item, measure
from harness.history import add_db_options, record_folder
from harness.tracking import add_mlflow_options, log_if_asked
from export.remote import add_executor_options
from harness.options import add_provider_option, add_target_options, output_folder, targets_from
from harness.console import Progress, format_summary
from targets.errors import EdgebenchError, TargetError
from harness.experiment import DEFAULT_TOML, Experiment, load_experiment
from harness.measurement import RunSpec
from harness.report import write_report
from harness.results import new_run_id, read_csv_rows
from harness.runfolder import RunFolder

# --quick: a smoke run (CI, trying an experiment file); the numbers are rough and say so in the report.
QUICK_MEASURE = {"processes": 2, "min_time_s": 0.2, "min_iterations": 10}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", nargs="?", type=Path, metavar="EXPERIMENT.toml",
                   help="experiment file (default: the built-in one; see --print-default)")
    p.add_argument("--out", type=Path, metavar="DIR", help="result folder (overrides the experiment's `out`)")
    p.add_argument("--quick", action="store_true", help="short measurements for a smoke run")
    p.add_argument("--print-default", action="store_true", help="print the built-in experiment as TOML and exit")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines (for CI logs)")
    add_provider_option(p)  # overrides the experiment's measure.providers
    p.add_argument("--int8-select-on", metavar="T",
                   help="where a plain +int8 measures its forms before shipping one: build (this machine) or one "
                        "of the targets (overrides the experiment's build.int8_select_on)")
    add_target_options(p)
    add_db_options(p)
    add_mlflow_options(p)
    add_executor_options(p)


@dataclass(frozen=True)
class PreparedModel:
    """A model of the experiment, checked: its spec, weights and input shape."""

    name: str
    spec: str
    weights: Path | None
    input_shape: tuple[int, ...]


def _prepare(experiment: Experiment, progress: Progress) -> list[PreparedModel]:
    """Check variant specs, model specs, weights, input shapes and data now, before anything is built."""
    from export.data import load_dataset
    from export.variants import parse_variants
    from export.zoo import load_model

    parse_variants(list(experiment.variants))
    prepared = []
    for entry in experiment.models:
        progress(f"checking model {entry.name} ({entry.model})")
        _, shape = load_model(entry.model, entry.weights, entry.input_shape)
        load_dataset(experiment.data, shape)
        prepared.append(PreparedModel(entry.name, entry.model, entry.weights, tuple(shape)))
    return prepared


def _check_targets(targets: list, progress: Progress) -> dict[str, int | None]:
    """Reach every target and check it can run the runner, before anything is built; returns their cores."""
    from targets.ssh import usability_problem

    cores: dict[str, int | None] = {}
    for target in targets:
        progress(f"checking target {target.name}")
        with target:
            doc = target.probe()
        if doc.get("status") != "ok":
            raise TargetError(f"target {target.name}: {doc.get('error')}")
        problem = usability_problem(doc.get("machine") or {}, target.name)
        if problem:
            raise TargetError(problem)
        cores[target.name] = (doc.get("machine") or {}).get("cores")
    return cores


def _same_file_once(items: list[BenchItem], progress: Progress) -> list[BenchItem]:
    """int8_forms = "all" builds X+int8 and X+int8:FORM for each form; the one the build chose is the same
    file twice (same sha256): measure it once, under the build's name."""
    plain = {(i.variant, i.sha256) for i in items if i.ok}
    out = []
    for item in items:
        parent = item.variant.rsplit(":", 1)[0] if "+int8:" in item.variant else None
        if item.ok and parent and (parent, item.sha256) in plain:
            progress(f"{item.variant} is the file {parent} shipped (same sha256): measured once, as {parent}")
            continue
        out.append(item)
    return out


def _specs_per_target(experiment: Experiment, cores: dict[str, int | None], test_data: Path | None,
                      targets: list) -> list[tuple[RunSpec, list]]:
    """(spec, the targets it runs on): threads = "cores" gives each target 1..its own core count."""
    if not experiment.threads_up_to_cores:
        return [(spec, targets) for spec in experiment.run_specs(data=test_data)]
    counts = sorted({t for n in cores.values() for t in experiment.thread_counts(n)})
    out = [(spec, [t for t in targets if spec.threads in experiment.thread_counts(cores.get(t.name))])
           for spec in experiment.run_specs(data=test_data, threads=tuple(counts))]
    return [(spec, on) for spec, on in out if on]


def _build(model: PreparedModel, experiment: Experiment, out: Path, targets: list,
           progress: Progress, executor: str = "local", train_device: str = "cpu") -> tuple[list[BenchItem], Path | None]:
    """Build (or reuse) the model's variants; returns bench items and the test split the targets evaluate."""
    from export import int8
    from export.build import BuildOptions, compress

    folder = out / "artifacts" / model.name
    options = BuildOptions(int8_select_on=experiment.int8_select_on, int8_tolerance=experiment.int8_tolerance)
    build = dict(weights=model.weights, input_shape=model.input_shape, data=experiment.data, progress=progress,
                 options=options, executor=executor, train_device=train_device)
    variants = experiment.build_variants()
    if experiment.int8_select_on == "build":
        rows = compress(model.spec, variants, folder, **build)
    else:
        with next(t for t in targets if t.name == experiment.int8_select_on) as target:
            rows = compress(model.spec, variants, folder, int8_evaluator=int8.OnTarget(target), **build)
    items = []
    for row in rows:
        variant = str(row["variant"])
        if row.get("status") == "ok":
            item = load_item(folder / str(row["variant_dir"]))
            items.append(replace(item, model=model.name, variant=variant))
        else:
            items.append(BenchItem(model.name, variant, folder / str(row.get("variant_dir", "")),
                                   status=str(row.get("status") or "build_failed"),
                                   error=str(row.get("error") or "the build failed")))
    # compress writes the test split beside the artifacts (a reused manifest may name an old path)
    test_data = folder / "data.npz"
    return _same_file_once(items, progress), test_data if test_data.exists() else None


def run(args: argparse.Namespace) -> int:
    if args.print_default:
        sys.stdout.write(DEFAULT_TOML)
        return 0
    experiment = load_experiment(args.experiment)
    if args.out:
        experiment = replace(experiment, out=args.out)
    if args.target:
        experiment = replace(experiment, targets=tuple(args.target))
    if args.quick:
        experiment = replace(experiment, measure={**experiment.measure, **QUICK_MEASURE})
    if args.int8_select_on:
        experiment = replace(experiment, int8_select_on=args.int8_select_on)
    if args.provider:
        from harness.providers import parse_providers

        experiment = replace(experiment, providers=parse_providers(args.provider))
    if experiment.int8_select_on not in ("build", *experiment.targets):
        raise EdgebenchError(f"INT8 forms are to be measured on {experiment.int8_select_on}, which is not one of the "
                             f"targets ({', '.join(experiment.targets)}); use build or one of them")
    args.target = list(experiment.targets)
    out = experiment.out
    progress = Progress(args.quiet)
    progress(f"experiment {experiment.name}: {len(experiment.models)} model(s) x {len(experiment.variants)} "
             f"variant(s) x {len(experiment.targets)} target(s) -> {out}")

    targets = targets_from(args)
    for target in targets:
        target.on_lock_wait = progress
    output_folder(out, "the result folder")
    # One command per folder from the start (builds write artifacts/ too); a rerun resumes from its journal.
    with RunFolder(out, progress) as folder:
        models = _prepare(experiment, progress)
        cores = _check_targets(targets, progress)
        redo = len(folder.state.failed())
        if redo:
            progress(f"resuming: {redo} failed measurement(s) will be redone")
        run_id = new_run_id()
        target_errors: dict[str, str] = {}
        try:
            for model in models:
                items, test_data = _build(model, experiment, out, targets, progress, args.executor, args.train_device)
                for spec, on in _specs_per_target(experiment, cores, test_data, targets):
                    outcomes = measure(items, on, spec, folder, run_id, progress, seed=spec.seed)
                    target_errors.update({o.target: o.error for o in outcomes if o.error})
        finally:
            progress.close()  # the bars end before the summary table prints
        folder.sync()  # the report reads summary.csv and samples.csv: every measurement in them first
        report = write_report(out)
    rows = read_csv_rows(out / "summary.csv")
    print("\n".join(format_summary(rows)))
    print(f"results: {out}/summary.csv\nreport:  {report}")
    record_folder(args, "run", out)
    logged = log_if_asked(args, out)
    failed = [r for r in rows if r["status"] != "ok"]
    for name, error in target_errors.items():
        print(f"error: target {name}: {error}", file=sys.stderr)
    if failed and not target_errors:
        first = failed[0]
        raise_line = f"{first['variant']} on {first['target']}: {first['error']}"
        print(f"error: {raise_line} ({len(failed)} of {len(rows)} rows failed; see {out}/summary.csv)",
              file=sys.stderr)
    return 1 if failed or target_errors or logged else 0
