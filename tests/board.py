"""Test helpers for the emulated arm64 board: the board itself lives in scripts/arm64_board.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.corpus import unpacked_wheel
from tests.sshd import _load

arm64_board = _load("edgebench_arm64_board", Path(__file__).resolve().parents[1] / "scripts" / "arm64_board.py")
Board = arm64_board.Board
missing_requirements = arm64_board.missing_requirements
BOARD_PYTHON = "3.11"  # Debian bookworm's, the board's system Python
BOARD_WHEELS = "manylinux_2_28_aarch64"


def board_venv(board, name: str, requirement: str) -> str:
    """A venv on the board holding `requirement`'s aarch64 wheel (fetched on the host, cached) beside the
    board's own numpy; returns its interpreter's path on the board."""
    wheel = unpacked_wheel(requirement, BOARD_WHEELS, BOARD_PYTHON)
    venv = f"/home/{arm64_board.USER}/{name}"
    subprocess.run(["ssh", "-F", str(board.ssh_config), board.alias, f"python3 -m venv --without-pip {venv}"],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    site = board.root / venv.lstrip("/") / f"lib/python{BOARD_PYTHON}/site-packages"
    subprocess.run(["cp", "-a", f"{wheel}/.", str(site)], check=True)
    (site / "board-venv.pth").write_text(f"{arm64_board.VENV}/lib/python{BOARD_PYTHON}/site-packages\n")
    subprocess.run(["chown", "-R", f"{arm64_board.UID}:{arm64_board.UID}", str(board.root / venv.lstrip("/"))],
                   check=True)  # fmt: skip
    return f"{venv}/bin/python"
