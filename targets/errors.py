"""The one error type users see. The CLI alone turns it into `error: …` and an exit code."""

from __future__ import annotations


class EdgebenchError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""

    exit_code = 2


class TargetError(EdgebenchError):
    """A target cannot be used at all (unreachable, login refused, no onnxruntime, ...)."""

    exit_code = 3
