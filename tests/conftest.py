"""Shared fixtures: a real loopback sshd with a Pi-like user, the emulated arm64 board, small models.

No SSH is mocked: `loopback_sshd` is a real OpenSSH server on 127.0.0.1, `arm64_board` a real aarch64
Debian under user-mode QEMU. Both need root; elsewhere they skip with the reason, but under CI=true a
missing prerequisite is a failure, so CI can never go green by skipping the remote path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import onnx_models

IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip with `reason`; under CI=true fail instead (a skipped remote path proves nothing)."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


# ------------------------------------------------------------------ the results database

# Every run, bench and compare appends to the results database: the tests' go to a file of their own, never
# to the user's ~/.local/share/edgebench. Set before any test starts a command, so subprocesses inherit it.
os.environ["EDGEBENCH_DB"] = str(Path(tempfile.mkdtemp(prefix="edgebench-test-db-")) / "history.sqlite")


# ------------------------------------------------------------------ models


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mlp_model(model_dir: Path) -> Path:
    """A small FP32 classifier (Flatten-MatMul-Relu-MatMul over 1x8x8 inputs)."""
    return onnx_models.mlp(model_dir / "mlp.onnx")


@pytest.fixture(scope="session")
def int8_model(model_dir: Path, mlp_model: Path) -> Path:
    """The same classifier quantized to INT8 (static QDQ, per-channel, U8 activations / S8 weights)."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"x": rng.standard_normal((1, 1, 8, 8)).astype(np.float32)} for _ in range(16)])

        def get_next(self):  # noqa: ANN201 - onnxruntime's interface
            return next(self.batches, None)

    out = model_dir / "mlp-int8.onnx"
    quantize_static(str(mlp_model), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    return out


# ------------------------------------------------------------------ loopback sshd


@pytest.fixture(scope="session")
def loopback_sshd() -> Iterator:
    """A running sshd on 127.0.0.1 (its own config and host key) and user `edgepi` with a provisioned venv.

    Yields a `LoopbackSshd`: `.alias` ("edgepi-loop") and `.ssh_config` (pass it as SshTarget's
    ssh_config), `.port`, `.user`, `.client_key`, `.known_hosts`, `.write_client_config(...)` for variants.
    """
    if shutil.which("sshd") is None and not os.path.exists("/usr/sbin/sshd"):
        skip_or_fail("openssh-server is not installed (apt-get install openssh-server openssh-client)")
    if os.geteuid() != 0:
        skip_or_fail("the loopback sshd needs root (it logs in as a separate test user)")
    from tests.sshd import LoopbackSshd

    # Not under pytest's 0700 tmp folder: sshd reads authorized_keys as the test user.
    workdir = Path(tempfile.mkdtemp(prefix="edgebench-sshd-"))
    sshd = LoopbackSshd(workdir)
    sshd.prepare()
    sshd.start()
    try:
        _provision_like_here(sshd)
        yield sshd
    finally:
        sshd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _provision_like_here(sshd) -> None:
    """Give the test user numpy and onnxruntime of this interpreter's versions, once (kept in its home)."""
    import numpy
    import onnxruntime

    from targets.doctor import provision
    from targets.ssh import SshTarget

    target = SshTarget(sshd.alias, ssh_config=sshd.ssh_config)
    try:
        machine = target.probe().get("machine") or {}
        if (machine.get("numpy"), machine.get("onnxruntime")) != (numpy.__version__, onnxruntime.__version__):
            provision(target, packages=[f"numpy=={numpy.__version__}", f"onnxruntime=={onnxruntime.__version__}"])
    finally:
        target.close()


# onnxruntime-openvino (the OpenVINO execution provider) replaces the onnxruntime package, so it lives in a
# venv of its own beside the board user's default one, keyed by versions: built once per machine (~1 min).
OPENVINO_ORT = "1.24.1"


@pytest.fixture(scope="session")
def openvino_python(loopback_sshd) -> str:
    """The board user's second interpreter, whose onnxruntime offers OpenVINOExecutionProvider (for --python)."""
    import shlex

    import numpy

    from targets.doctor import provision
    from targets.ssh import SshTarget

    venv = f"venv-onnxruntime-openvino-{OPENVINO_ORT}-numpy-{numpy.__version__}"
    target = SshTarget(loopback_sshd.alias, ssh_config=loopback_sshd.ssh_config)
    try:
        target.connect()
        python = f"{target.cache_dir}/{venv}/bin/python"
        check = (f"{shlex.quote(python)} -c 'import onnxruntime as o; "
                 "assert \"OpenVINOExecutionProvider\" in o.get_available_providers()'")
        if target.shell(check, timeout=60).returncode != 0:
            provision(target, packages=[f"onnxruntime-openvino=={OPENVINO_ORT}", f"numpy=={numpy.__version__}"],
                      venv=venv, timeout=900)
            proc = target.shell(check, timeout=60)
            if proc.returncode != 0:
                skip_or_fail(f"onnxruntime-openvino {OPENVINO_ORT} offers no OpenVINOExecutionProvider here: "
                             f"{proc.stderr.strip()[-300:]}")
    finally:
        target.close()
    return python


@pytest.fixture
def ssh_target(loopback_sshd) -> Iterator:
    """An opened SshTarget on the loopback alias; closed afterwards."""
    from targets.ssh import SshTarget

    target = SshTarget(loopback_sshd.alias, ssh_config=loopback_sshd.ssh_config)
    target.open()
    try:
        yield target
    finally:
        target.close()


# ------------------------------------------------------------------ an emulated x86 CPU without VNNI


@pytest.fixture(scope="session")
def haswell_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This interpreter under user-mode QEMU presenting a Haswell CPU (AVX2, no VNNI), as a file to pass
    as --python: INT8 accuracy depends on the CPU's integer kernels, and CI's CPU may have VNNI."""
    import platform
    import sys

    from tests.sshd import _load

    if platform.machine() != "x86_64":
        skip_or_fail(f"the emulated Haswell needs an x86_64 host, not {platform.machine()}")
    if not (shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")):
        skip_or_fail("qemu-user-static is not installed (apt-get install qemu-user-static)")
    emulated = _load("edgebench_emulated_cpu", Path(__file__).resolve().parents[1] / "scripts" / "emulated_cpu.py")
    return emulated.write_wrapper(tmp_path_factory.mktemp("cpu") / "haswell-python", "Haswell", sys.executable)


# ------------------------------------------------------------------ emulated arm64 board


@pytest.fixture(scope="session")
def arm64_board() -> Iterator:
    """A running emulated aarch64 board (Debian bookworm under QEMU, a Pi 4's Cortex-A72) with sshd on 127.0.0.1.

    Yields a `Board`: `.alias` ("pi-emu"), `.ssh_config`, `.port`, `.root` (its filesystem on the
    host) and `.set_temperature(c)` for the fake vcgencmd. Builds the cached rootfs on first use (~6 min).
    """
    from tests.board import Board, missing_requirements

    problem = missing_requirements()
    if problem:
        skip_or_fail(problem)
    board = Board(Path(tempfile.mkdtemp(prefix="edgebench-board-")))
    try:
        board.prepare()
        board.start()
        yield board
    finally:
        board.remove()


@pytest.fixture(scope="session")
def arm64_board_pi5(arm64_board) -> Iterator:
    """A Pi 5's CPU (QEMU cortex-a76) on the same board filesystem: a second sshd, alias "pi-emu-cortex-a76"."""
    from tests.board import Board

    board = Board(Path(tempfile.mkdtemp(prefix="edgebench-board-")), cpu="cortex-a76", root=arm64_board.root)
    try:
        board.prepare()
        board.start()
        yield board
    finally:
        board.remove()
