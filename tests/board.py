"""Test helpers for the emulated arm64 board: the board itself lives in scripts/arm64_board.py."""

from __future__ import annotations

from pathlib import Path

from tests.sshd import _load

arm64_board = _load("edgebench_arm64_board", Path(__file__).resolve().parents[1] / "scripts" / "arm64_board.py")
Board = arm64_board.Board
missing_requirements = arm64_board.missing_requirements
