"""Board telemetry the harness acts on: the `--cooldown` wait and "did throttling start during this run".

The runner itself reads the sensors (temperature, throttle flags, clock, load) before and after each
measurement and puts them in its JSON as ``telemetry_start`` / ``telemetry_end``; this module only
interprets those records and polls `target.probe()`, so it works the same for every target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from targets.base import Target


@dataclass(frozen=True)
class Cooldown:
    """What `wait_for_cooldown` saw: `reached` False means the time limit ran out (or no sensor)."""

    reached: bool
    temp_c: float | None
    waited_s: float
    message: str


def probe_temperature(target: Target, timeout: float = 60.0) -> float | None:
    doc = target.probe(timeout)
    return (doc.get("telemetry_start") or {}).get("temp_c")


def wait_for_cooldown(
    target: Target,
    max_temp_c: float,
    timeout_s: float,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Cooldown:
    """Poll the target's temperature until it is at or below `max_temp_c`, for at most `timeout_s`.

    Never raises for heat: a board that stays hot is measured anyway and the result says so (the
    caller records `reached` False and the temperature). A board without a sensor returns at once.
    """
    start = time.monotonic()
    while True:
        temp = probe_temperature(target)
        waited = time.monotonic() - start
        if temp is None:
            return Cooldown(False, None, waited, f"{target.name} has no temperature sensor; --cooldown skipped")
        if temp <= max_temp_c:
            return Cooldown(True, temp, waited, f"{target.name} at {temp:.1f} °C after {waited:.0f} s")
        if waited + poll_s > timeout_s:
            return Cooldown(
                False, temp, waited,
                f"{target.name} still at {temp:.1f} °C (> {max_temp_c:.0f} °C) after {waited:.0f} s; "
                "measuring anyway: improve cooling or raise the cooldown time limit",
            )  # fmt: skip
        sleep(poll_s)


def _flags(tel: dict[str, Any] | None) -> set[str]:
    throttle = (tel or {}).get("throttle") or {}
    return set(throttle.get("flags") or [])


def throttling_started(doc: dict[str, Any]) -> bool:
    """True when a current throttle/cap/under-voltage flag was set at the end but not at the start."""
    now_flags = {"under_voltage", "freq_capped", "throttled", "soft_temp_limit"}
    start, end = _flags(doc.get("telemetry_start")), _flags(doc.get("telemetry_end"))
    return bool((end - start) & now_flags)


def measurement_throttled(start: dict[str, Any] | None, end: dict[str, Any] | None) -> bool:
    """The board was throttled at the start or the end of a measurement, or a throttle flag (now or
    since boot) appeared during it: the number is then not the board's steady speed."""
    now = any(((t or {}).get("throttle") or {}).get("throttled_now") for t in (start, end))
    return now or bool(_flags(end) - _flags(start))
