"""What the report tells a user to ship on a target: variant, INT8 form, thread count, with evidence."""

from __future__ import annotations

import numpy as np

from harness import advice


def row(variant, median, threads=1, accuracy=None, sha="", form=None, where="target"):
    return {"variant": variant, "threads": threads, "batch_size": 1, "status": "ok", "latency_ms_median": median,
            "latency_ms_ci95_low": median * 0.99, "latency_ms_ci95_high": median * 1.01, "accuracy": accuracy,
            "accuracy_where": where if accuracy is not None else None, "artifact_sha256": sha or variant,
            "int8_form": form}


def groups_of(rows):
    """Five processes per row, each 50 calls spread 1% around the row's median (a steady machine)."""
    rng = np.random.default_rng(0)
    table = {(r["variant"], r["threads"]): [list(r["latency_ms_median"] * (1 + 0.01 * rng.standard_normal(50)))
                                            for _ in range(5)] for r in rows}
    return lambda r: table[(r["variant"], r["threads"])]


def test_the_fastest_thread_count_is_chosen_with_its_verdict():
    rows = [row("fp32", 1.0, threads=1), row("fp32", 0.6, threads=2), row("int8", 0.3, threads=1)]
    choices = advice.best_threads(rows, groups_of(rows))
    assert set(choices) == {"fp32"}  # int8 was measured at one thread count only: nothing to choose
    c = choices["fp32"]
    assert c.row["threads"] == 2 and c.comparison.verdict == "faster"
    assert "2 threads" in c.sentence() and "1.67× faster" in c.sentence()


def test_two_thread_counts_of_equal_speed_are_called_the_same():
    rows = [row("fp32", 1.0, threads=1), row("fp32", 1.001, threads=2)]
    c = advice.best_threads(rows, groups_of(rows))["fp32"]
    assert c.comparison.verdict == "same" and "same speed" in c.sentence()


def test_the_int8_form_is_accurate_here_first_then_fastest():
    """On a CPU without VNNI u8s8 is fastest but loses 20 points: reduce ships, and the note says why."""
    rows = [row("fp32", 1.0, accuracy=0.98),
            row("fp32+int8", 0.33, accuracy=0.975, sha="R", form="reduce"),
            row("fp32+int8:reduce", 0.33, accuracy=0.975, sha="R", form="reduce"),  # the same file
            row("fp32+int8:u8s8", 0.30, accuracy=0.78, sha="U", form="u8s8"),
            row("fp32+int8:s8s8", 0.87, accuracy=0.979, sha="S", form="s8s8")]
    choice = advice.int8_forms(rows, groups_of(rows))["fp32"]
    assert choice.row["variant"] == "fp32+int8" and choice.runner_up["variant"] == "fp32+int8:s8s8"
    assert choice.comparison.verdict == "faster"
    assert "fp32+int8:u8s8 (-20.0)" in choice.note


def test_without_accuracy_anywhere_the_choice_says_it_is_by_speed_only():
    rows = [row("fp32", 1.0), row("fp32+int8:u8s8", 0.30, sha="U"), row("fp32+int8:reduce", 0.31, sha="R")]
    choice = advice.int8_forms(rows, groups_of(rows))["fp32"]
    assert choice.row["variant"] == "fp32+int8:u8s8" and "speed only" in choice.note


def test_the_variant_to_ship_is_the_fastest_accurate_one_at_its_best_thread_count():
    rows = [row("fp32", 1.0, accuracy=0.98), row("fp32", 0.7, threads=2, accuracy=0.98),
            row("cluster:4", 0.2, accuracy=0.43), row("prune-ch:0.5+int8", 0.25, accuracy=0.985),
            row("prune-ch:0.5+int8", 0.22, threads=2, accuracy=0.985), row("fp32+int8", 0.33, accuracy=0.975)]
    choice = advice.ship(rows, groups_of(rows))
    assert choice.row["variant"] == "prune-ch:0.5+int8" and choice.row["threads"] == 2
    assert choice.runner_up["variant"] == "fp32+int8"
    assert "cluster:4 (-55.0)" in choice.note
    assert choice.sentence().startswith("**prune-ch:0.5+int8 at 2 threads**: median 0.22 ms")


def test_accuracy_from_the_build_machine_is_named_as_such():
    rows = [row("fp32", 1.0, accuracy=0.98, where="build machine"),
            row("fp32+int8", 0.3, accuracy=0.975, where="build machine")]
    choice = advice.ship(rows, groups_of(rows))
    assert choice.row["variant"] == "fp32+int8" and "build machine" in choice.note


def test_a_lone_candidate_is_said_to_be_alone():
    rows = [row("fp32", 1.0, accuracy=0.98)]
    choice = advice.ship(rows, groups_of(rows))
    assert choice.runner_up is None and "only candidate" in choice.sentence()
