"""Point labels that never overlap, for every plot edgebench draws.

adjustText (the long-kept matplotlib library for exactly this: labels pushed apart from each other and
from their points, a thin line back where one travelled) does the placement; it moves labels rather than
choosing among fixed spots, so every point keeps its name. Its result is checked in display space, and
placement is asked again with stronger forces while two labels still touch (tests/test_plotlabels.py: the
crowds seen in real reports, and random ones).
"""

from __future__ import annotations

import itertools
from typing import Any

# (expand, force_text) per attempt: each pushes labels further apart than the last
_ATTEMPTS = (((1.2, 1.5), (0.3, 0.6)), ((1.4, 1.8), (0.6, 1.2)), ((1.7, 2.2), (1.0, 2.0)))


def overlapping(texts: list[Any]) -> list[tuple[str, str]]:
    """Pairs of labels whose boxes on the drawn figure intersect."""
    if not texts:
        return []
    fig = texts[0].figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


def place_labels(ax: Any, points: list[tuple[float, float, str]]) -> list[Any]:
    """Name each point so that no two labels overlap. Call it once the axes are final (scales, limits):
    placement works in display space, so the figure's layout is settled first."""
    from adjustText import adjust_text

    if len(points) > 1:
        ax.margins(0.15)  # room beside the outermost points, where their labels go
    ax.figure.tight_layout()
    xs, ys, names = [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]
    drawn: list[Any] = []
    texts: list[Any] = []
    for expand, force in _ATTEMPTS:
        for artist in drawn:  # the last attempt's labels and the lines back to their points
            artist.remove()
        texts = [ax.text(x, y, name, fontsize=8) for (x, y), name in zip(_fanned(ax, points), names)]
        if len(texts) < 2:
            break
        _, lines = adjust_text(texts, x=xs, y=ys, ax=ax, expand=expand, force_text=force, ensure_inside_axes=True,
                               arrowprops=dict(arrowstyle="-", color="0.5", lw=0.5))
        drawn = [*lines, *texts]
        ax.figure.tight_layout()  # as the figure is saved: the layout may move once the labels are in
        if not overlapping(texts):
            break
    return texts


def _fanned(ax: Any, points: list[tuple[float, float, str]]) -> list[tuple[float, float]]:
    """Where each label starts: at its point, moved up line by line (11 px) while it would start on top of
    an earlier label. Near-equal forces on labels that start at one place move them as one: they never part."""
    starts: list[tuple[float, float]] = []
    out = []
    for x, y, _ in points:
        px, py = ax.transData.transform((x, y))
        while any(abs(px - sx) < 60 and abs(py - sy) < 11 for sx, sy in starts):
            py += 11
        starts.append((px, py))
        out.append(tuple(ax.transData.inverted().transform((px, py))))
    return out
