"""Peak resident memory of `edgebench bench` against a bare onnxruntime loop, on a one-node model.

Three processes, each measured by its own getrusage(RUSAGE_SELF).ru_maxrss at exit:
- the bare loop: numpy + onnxruntime, one session, the same calls;
- the orchestrator: `python -m harness bench` (it parses, checks the model, schedules, writes the files,
  and never loads onnxruntime, torch or pandas itself);
- its runner processes (the largest, from RUSAGE_CHILDREN): what measures on the target.

    .venv/bin/python scripts/light_footprint.py [--repeat 3] [--repo OTHER_CHECKOUT]

Prints each figure in MB (the median of the repeats), the ratios to the bare loop, the heavy modules the
orchestrator imported (none expected) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "matplotlib", "sklearn", "scipy", "onnxruntime")

BARE = """
import resource, sys, time
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, 64), dtype=np.float32)
for _ in range(5):
    session.run(None, {"x": x})  # warm-up, as the runner does
times = []
deadline = time.perf_counter() + 0.5
while time.perf_counter() < deadline:
    t = time.perf_counter(); session.run(None, {"x": x}); times.append(time.perf_counter() - t)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

ORCHESTRATOR = """
import json, resource, runpy, sys
sys.argv = ["edgebench", *sys.argv[2:]]
try:
    runpy.run_module("harness", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(m for m in %r if m in sys.modules)
print(json.dumps({"code": code, "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "runner_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "heavy": heavy}))
""" % (HEAVY,)


def one_node_model(path: Path) -> Path:
    """y = Relu(x), x [1, 64]: the runtime's own footprint, with no weights to speak of."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # old enough for any onnxruntime >= 1.18
    onnx.save(model, path)
    return path


def _last_line(argv: list[str], cwd: Path) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose edgebench to measure (e.g. an older one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = one_node_model(Path(tmp) / "relu.onnx")
        bare, orch, runner, heavy = [], [], [], set()
        for i in range(args.repeat):
            bare.append(int(_last_line([sys.executable, "-c", BARE, str(model)], args.repo)) / 1024)
            doc = json.loads(_last_line([sys.executable, "-c", ORCHESTRATOR, "-", "bench", str(model), "--out",
                                         f"{tmp}/out{i}", "--processes", "1", "--min-time", "0.5", "-q"], args.repo))
            if doc["code"] not in (0, None):
                raise SystemExit(f"edgebench bench exited {doc['code']}")
            orch.append(doc["self_kb"] / 1024)
            runner.append(doc["runner_kb"] / 1024)
            heavy |= set(doc["heavy"])
    b, o, r = (statistics.median(v) for v in (bare, orch, runner))
    print(f"{args.repo}: load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} (2 cores here)")
    print(f"bare onnxruntime loop   {b:6.1f} MB")
    print(f"edgebench bench (self)  {o:6.1f} MB  {o / b:.2f}x the bare loop")
    print(f"its runner process      {r:6.1f} MB  {r / b:.2f}x the bare loop")
    print(f"heavy modules the orchestrator imported: {', '.join(sorted(heavy)) or 'none'}")


if __name__ == "__main__":
    main()
