"""FakeTarget: a Target that answers with scripted runner documents instead of starting processes.

Like hyperfine's mock executor, it makes scheduling, resume and the files derived from the journal
testable in milliseconds and deterministic (golden files). It lives in tests/ only: every number a
user sees comes from the real runner (targets/local.py, targets/ssh.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.base import Target

MACHINE = {"hostname": "fake", "arch": "x86_64", "cpu_model": "Fake CPU", "onnxruntime": "0.0", "cores": 2}


def runner_doc(median_ms: float, n: int = 20, step_ns: int = 1000, **extra: Any) -> dict[str, Any]:
    """An ok runner document: n calls spread evenly around median_ms (whole ns, as the runner reports)."""
    base = round(median_ms * 1e6)
    latencies = [base + step_ns * (i - n // 2) for i in range(n)]
    return {"status": "ok", "latencies_ns": latencies, "warmup_ns": latencies[:2], "init_ms": 3.0,
            "first_inference_ms": median_ms * 2, "throughput_ips": 1000 / median_ms, "rss_before_session_mb": 40.0,
            "rss_after_session_mb": 50.0, "peak_rss_mb": 55.0, "machine": MACHINE, "batch_size": 1,
            "telemetry_start": {"load_avg_1m": 0.1}, "telemetry_end": {"load_avg_1m": 0.1}, **extra}


# (model file name, process index as the spec's seed offset tells it, call number) -> runner document
Script = Callable[[str, int, int], dict[str, Any]]


class FakeTarget(Target):
    """Returns `script(model file name, process index, call number)`; `calls` records what was asked."""

    def __init__(self, script: Script, name: str = "local", seed: int = 0) -> None:
        self.script = script
        self.name = name
        self.seed = seed  # the RunSpec's seed: the process index is the spec's seed minus it
        self.calls: list[tuple[str, int]] = []

    def run(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        model = Path(spec["files"]["model"]).name
        index = int(spec["inputs"]["seed"]) - self.seed  # RunSpec.runner_spec offsets the seed by the index
        self.calls.append((model, index))
        return self.script(model, index, len(self.calls))

    def probe(self, timeout: float = 30.0) -> dict[str, Any]:
        return {"status": "ok", "machine": MACHINE}
