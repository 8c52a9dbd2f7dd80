"""Builds on a cluster: each variant one task of a real distributed engine (Dask), the base model trained once.

`--executor local` (default) builds in this process, as before; `--executor dask://HOST:PORT` (or
`tcp://HOST:PORT`) sends each variant to an existing Dask cluster (`pip install 'edgebench[dask]'` here and
on the workers). Dask and not Ray: both retry a task whose worker died on another worker, but the engine's
whole job here is to run independent, long Python functions; Dask's scheduler and workers are two plain
commands (`dask scheduler`, `dask worker`), and it installs in 7 s / 70 MB against Ray's 10 s / 284 MB
(fresh venvs here), with no raylet, GCS or dashboard processes beside the workers.

What travels: a task gets everything it needs as bytes, nothing by path (a worker on another machine shares
no filesystem): the model spec (and the .py file it names, if any), the trained weights (a state_dict), the
data set's arrays, the build options and the variant. It returns the variant's folder as bytes, and the
driver writes it into the run folder exactly where and as a local build would (tests compare the two). A
worker killed mid-build: the scheduler gives its task to another worker (Dask counts it against
`distributed.scheduler.allowed-failures`, 3 by default); a variant that fails is its row and the others go on.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError

LOCAL = "local"
SCHEMES = ("dask://", "tcp://")


def check_executor(text: str) -> str:
    """`local`, `dask://HOST:PORT` or `tcp://HOST:PORT` (argparse type)."""
    import argparse

    if text == LOCAL or (text.startswith(SCHEMES) and ":" in text.split("://", 1)[1]):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: give local, or a Dask scheduler as dask://HOST:PORT")


def add_executor_options(p: Any) -> None:
    """Where variants are built and fine-tuned (compress and run)."""
    p.add_argument("--executor", type=check_executor, default=LOCAL, metavar="local|dask://HOST:PORT",
                   help="build here (local, default) or send each variant as a task to a Dask cluster's scheduler "
                        "(pip install 'edgebench[dask]' here and on the workers)")
    p.add_argument("--train-device", choices=("auto", "cpu", "cuda"), default="cpu",
                   help="where fine-tuning runs: auto takes the GPU of the machine that builds (a worker's, with "
                        "--executor) when torch sees one (default cpu)")


@dataclass(frozen=True)
class BuildJob:
    """One variant's build, self-contained."""

    spec: str  # as the manifest names it
    model_file: tuple[str, bytes] | None  # (file name, source) when spec is path/file.py:factory
    input_shape: tuple[int, ...]
    data: Any  # export.data.Dataset: the arrays themselves
    options: Any  # export.build.BuildOptions
    state_dict: bytes  # the trained (or given) weights, torch.save'd
    weights_record: dict
    exporter: str
    exporter_skipped: list
    variant: str
    train_device: str
    layouts: dict[str, tuple[int, ...]]  # each data array's strides: pickling drops them (see _laid_out)


@dataclass(frozen=True)
class BuiltVariant:
    """What a task sends back: the manifest fields the build made, the folder's files, where it ran."""

    built: dict
    files: dict[str, bytes]
    machine: dict  # the build machine's facts (its CPU chose the INT8 form)
    log: list[str]
    worker: str


def job_for(ctx: Any, variant: Any) -> BuildJob:
    """The job of `variant` from the driver's context (after training)."""
    import torch

    buf = io.BytesIO()
    torch.save(ctx.model.state_dict(), buf)
    model_file = None
    path, sep, _ = ctx.spec.rpartition(":")
    if sep and path.endswith(".py") and Path(path).is_file():
        model_file = (Path(path).name, Path(path).read_bytes())
    layouts = {name: getattr(ctx.data, name).strides for name in _ARRAYS}
    return BuildJob(ctx.spec, model_file, tuple(ctx.input_shape), ctx.data, ctx.options, buf.getvalue(),
                    dict(ctx.weights_record), ctx.exporter, list(ctx.exporter_skipped), str(variant),
                    ctx.train_device, layouts)


_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _laid_out(array: Any, strides: tuple[int, ...]) -> Any:
    """`array` with the driver's memory layout. Torch picks its conv kernels from a tensor's strides, and
    they round differently: the bundled digits arrive with a 4-byte channel stride (a transposed NHWC
    view), which torch reads as channels-last, while the unpickled copy has plain strides; built from it, a
    worker's prune-l1 / prune-ch weights came out up to 5e-4 off the local build's (measured)."""
    import numpy as np

    if array.strides == tuple(strides) or any(s < 0 for s in strides):
        return array
    span = 1 + sum((n - 1) * s for n, s in zip(array.shape, strides)) // array.itemsize
    view = np.lib.stride_tricks.as_strided(np.empty(span, array.dtype), array.shape, strides)
    view[...] = array
    return view


def build_job(job: BuildJob) -> BuiltVariant:
    """On a worker: the variant's folder, built in a fresh process of its own (`python -m export.remote`).

    A fresh process builds in its main thread as `compress` does, leaves no torch state (threads, RNG,
    caches) behind in the long-lived worker, and dies with the worker (parent-death signal), so a killed
    worker leaves no orphan build running. Its cost: a Python that imports torch, about 3 s per task here.
    """
    from targets.ssh import die_with_us

    prefix, preexec = die_with_us()
    proc = subprocess.run([*prefix, sys.executable, "-m", "export.remote"], input=pickle.dumps(job),
                          capture_output=True, preexec_fn=preexec, check=False)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
        raise EdgebenchError(f"the build process of {job.variant} on {socket.gethostname()} exited with code "
                             f"{proc.returncode}: {tail}")
    return pickle.loads(proc.stdout)


def _build_here(job: BuildJob) -> BuiltVariant:
    """The build itself, in this process."""
    import torch

    from export import build, int8
    from export.variants import parse_variants
    from export.zoo import load_model

    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgebench-task-") as tmp:
        spec = job.spec
        if job.model_file is not None:  # the factory's file, written here under its own name
            name, source = job.model_file
            (Path(tmp) / name).write_bytes(source)
            spec = str(Path(tmp) / name) + ":" + job.spec.rpartition(":")[2]
        build.set_threads()
        data = replace(job.data, **{name: _laid_out(getattr(job.data, name), job.layouts[name]) for name in _ARRAYS})
        net, _ = load_model(spec, None, job.input_shape, output=job.options.model_output,
                            **({"num_classes": data.num_classes} if spec.startswith("zoo:") else {}))
        net.load_state_dict(torch.load(io.BytesIO(job.state_dict), weights_only=True))
        ctx = build._Context(job.spec, net.eval(), job.input_shape, data, job.weights_record, job.options,
                             exporter=job.exporter, exporter_skipped=job.exporter_skipped,
                             train_device=build.resolve_device(job.train_device))
        (variant,) = parse_variants([job.variant])
        vdir = Path(tmp) / "variant"
        try:
            built = build._build_variant(ctx, variant, vdir, log.append)
        except Exception as exc:  # noqa: BLE001 - a failure is this variant's row, as in a local build
            built = build.failure_record(exc, traceback.format_exc())
        files = {f.name: f.read_bytes() for f in vdir.iterdir() if f.is_file()} if vdir.is_dir() else {}
        if built.get("status") != "ok":
            files.pop("model.onnx", None)
    return BuiltVariant(built, files, int8.build_machine(), log, f"{socket.gethostname()}:{os.getpid()}")


class DaskExecutor:
    """Variants as tasks on a Dask cluster; `submit` returns a future whose result() is a BuiltVariant."""

    def __init__(self, address: str, progress: Any) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise EdgebenchError("--executor dask://... needs Dask: pip install 'edgebench[dask]'") from None
        self.address = "tcp://" + address.split("://", 1)[1]
        try:
            self.client = Client(self.address, timeout=30)
        except OSError as exc:
            raise EdgebenchError(f"no Dask scheduler answers at {self.address} ({exc}): start one with `dask "
                                 "scheduler` and workers with `dask worker ADDRESS`, or use --executor local") from None
        workers = self.client.scheduler_info().get("workers", {})
        progress(f"building on the Dask cluster at {self.address}: {len(workers)} worker(s)")

    def submit(self, job: BuildJob) -> Any:
        # pure=False: the same job twice is two builds; the key names the variant in Dask's dashboard
        return self.client.submit(build_job, job, pure=False, key=f"edgebench-build-{job.variant}-{os.urandom(4).hex()}")

    def close(self) -> None:
        self.client.close()


def executor_for(text: str, progress: Any) -> DaskExecutor | None:
    return None if text == LOCAL else DaskExecutor(text, progress)


if __name__ == "__main__":  # a build process: the job pickled on stdin, the result pickled on stdout
    _result_fd = os.dup(1)
    os.dup2(2, 1)  # whatever a library prints (Python or C) goes to stderr: stdout carries only the result
    from export.remote import _build_here as _build  # the classes pickled as export.remote's, not __main__'s

    _result = pickle.dumps(_build(pickle.loads(sys.stdin.buffer.read())))
    with os.fdopen(_result_fd, "wb") as _out:
        _out.write(_result)
