"""Point labels in the report's plots never overlap (harness/plotlabels.py, adjustText)."""

from __future__ import annotations


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from harness.plotlabels import overlapping, place_labels  # noqa: E402

# the collisions seen in real reports: a variant and its iterative twin at the same point, fp32 and a
# pruned variant of equal speed and accuracy, and a crowd of INT8 forms
CROWD = [(1.00, 98.3, "fp32"), (1.01, 98.3, "prune-l1:0.9"), (0.52, 97.5, "prune-ch:0.5"),
         (0.52, 97.52, "prune-ch:0.5@iter=3"), (0.31, 98.1, "fp32+int8"), (0.31, 98.05, "fp32+int8:reduce"),
         (0.32, 98.0, "fp32+int8:u8s8"), (0.87, 98.1, "fp32+int8:s8s8"), (0.99, 97.9, "cluster:16"),
         (0.98, 97.9, "cluster-ch:4")]


@pytest.mark.parametrize("n", [2, 4, len(CROWD)])
def test_labels_of_points_on_top_of_each_other_do_not_overlap(n):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    points = CROWD[:n]
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    ax.set_xscale("log")
    texts = place_labels(ax, points)
    try:
        assert [t.get_text() for t in texts] == [p[2] for p in points]
        assert overlapping(texts) == []
        # every label stays inside the axes, where it is read
        fig.canvas.draw()
        frame = ax.get_window_extent(fig.canvas.get_renderer())
        for t in texts:
            box = t.get_window_extent(fig.canvas.get_renderer())
            assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1
            assert frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1
    finally:
        plt.close(fig)


def test_without_the_placement_the_same_labels_do_overlap():
    """The test above can fail: drawn where their points are, these labels collide."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.set_xscale("log")
    ax.scatter([p[0] for p in CROWD], [p[1] for p in CROWD])
    texts = [ax.text(x, y, name, fontsize=8) for x, y, name in CROWD]
    try:
        assert ("prune-ch:0.5", "prune-ch:0.5@iter=3") in overlapping(texts)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("seed", range(5))
def test_a_random_crowd_of_twelve_labels_does_not_overlap(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    points = [(float(x), float(y), f"variant-{i}:{rng.integers(2, 33)}") for i, (x, y) in
              enumerate(zip(rng.uniform(0.3, 1.0, 12), rng.uniform(96, 98.5, 12)))]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.set_xscale("log")
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    try:
        assert overlapping(place_labels(ax, points)) == []
    finally:
        plt.close(fig)


def test_labels_of_points_drawn_at_the_same_place_part():
    """Equal forces move labels that start at one place as one: without a fanned start they never part."""
    points = [(18.7, 8.0, "prune-ch:0.5@iter=3"), (18.7, 8.0, "prune-ch:0.5"), (148, 11.0, "prune-l1:0.9"),
              (148, 11.0, "fp32"), (148, 11.0, "fp32+int8")]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.set_xscale("log")
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    try:
        assert overlapping(place_labels(ax, points)) == []
    finally:
        plt.close(fig)


def test_no_plot_of_a_report_has_overlapping_labels(tmp_path, monkeypatch):
    """Through write_report: every figure it saves, checked as saved (after its final layout)."""
    import harness.report as report
    from tests.test_report import fill

    # fp32 and prune-l1:0.9 of equal speed and accuracy, a variant and its iterative twin likewise
    fill(tmp_path, {"fp32": (1.0, 150_000, 45), "prune-l1:0.9": (1.0, 150_000, 45),
                    "prune-ch:0.5": (0.5, 19_000, 40), "prune-ch:0.5@iter=3": (0.5, 19_000, 40)})
    found: dict[str, list] = {}
    save = report._save

    def checked(fig, path, title):
        fig.tight_layout()
        found[title] = [pair for ax in fig.axes if len(ax.texts) > 1 for pair in overlapping(list(ax.texts))]
        return save(fig, path, title)

    monkeypatch.setattr(report, "_save", checked)
    report.write_report(tmp_path)
    assert {"Accuracy vs latency", "Size vs accuracy"} <= set(found)
    assert all(pairs == [] for pairs in found.values()), found
