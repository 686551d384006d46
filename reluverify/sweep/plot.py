"""A picture of a sweep: the verdict per point and delta, and the certified radius per point.

One row of panels per (run, network, property, norm, epsilon) -- rows of different runs (another
property or domain, :mod:`reluverify.sweep.runs`) are never drawn into one panel, and each panel's
title names its domain:

* left -- a grid with one row per point and one column per delta, each cell coloured by its
  verdict (robust green, not robust red, tie purple, unknown grey, timeout orange, error black,
  no result yet white);
* right (when the sweep has several deltas) -- per point, a bar up to the largest delta up to
  which every delta is robust (the certified radius within the sweep) and a red tick at the
  smallest delta found not robust.

matplotlib with the Agg backend (no display needed); the file type follows the suffix (.png, .pdf, .svg).
"""

from __future__ import annotations

import os

from reluverify.sweep.report import KIND_NAMES, certified_radii, domain_label
from reluverify.sweep.runs import run_of

COLOURS = {
    "robust": "#2ca02c",
    "not robust": "#d62728",
    "tie": "#9467bd",
    "unknown": "#7f7f7f",
    "timeout": "#ff7f0e",
    "error": "#000000",
}
MISSING = "#ffffff"


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    first: dict[str, int] = {}  # runs in the order of their first row
    for row in rows:
        eps = -1.0 if row.get("epsilon") is None else float(row["epsilon"])
        run = run_of(row)
        first.setdefault(run, len(first))
        key = (run, os.path.basename(row["network"]), row["kind"], row["norm"], eps)
        groups.setdefault(key, []).append(row)
    return dict(sorted(groups.items(), key=lambda item: (first[item[0][0]], item[0][1:])))


def plot_sweep(rows: list[dict], path: str | os.PathLike, title: str | None = None) -> str:
    """Draw ``rows`` (a sweep's results) into ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    path = os.fspath(path)
    groups = _groups(rows)
    if not groups:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no results yet", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
    several = any(len({float(r["delta"]) for r in members}) > 1 for members in groups.values())
    heights = [min(8.0, 1.2 + 0.22 * len({int(r["point_index"]) for r in members})) for members in groups.values()]
    fig, axes = plt.subplots(len(groups), 2 if several else 1, squeeze=False, layout="constrained",
                             figsize=(11 if several else 6, sum(heights) + 1.2),
                             gridspec_kw={"height_ratios": heights})
    for (_, name, kind, norm, eps), members, row_axes in zip(groups.keys(), groups.values(), axes):
        points = sorted({int(r["point_index"]) for r in members})
        deltas = sorted({float(r["delta"]) for r in members})
        p_index = {p: i for i, p in enumerate(points)}
        d_index = {d: j for j, d in enumerate(deltas)}
        image = [[to_rgb(MISSING)] * len(deltas) for _ in points]
        for r in members:
            image[p_index[int(r["point_index"])]][d_index[float(r["delta"])]] = to_rgb(COLOURS.get(r["verdict"], MISSING))
        ax = row_axes[0]
        ax.imshow(image, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(deltas)))
        ax.set_xticklabels([f"{d:.3g}" for d in deltas], rotation=45 if len(deltas) > 6 else 0)
        step = max(1, len(points) // 20)
        ax.set_yticks(range(0, len(points), step))
        ax.set_yticklabels([str(points[i]) for i in range(0, len(points), step)])
        if len(points) <= 100:  # white lines between the cells
            ax.set_xticks([j - 0.5 for j in range(1, len(deltas))], minor=True)
            ax.set_yticks([i - 0.5 for i in range(1, len(points))], minor=True)
            ax.grid(which="minor", color="white", linewidth=1.0)
            ax.tick_params(which="minor", length=0)
        ax.set_xlabel(f"delta ({'L-inf' if norm == 'inf' else 'L1'})")
        ax.set_ylabel("point")
        what = KIND_NAMES.get(kind, kind) + ("" if eps < 0 else f", eps {eps:g}")
        ax.set_title(f"{name}: {what}, domain {domain_label(members[0]['domain'])}", fontsize=9)
        if several:
            ax = row_axes[1]
            by_point = {c["point_index"]: c for c in certified_radii(members)}
            ys = list(range(len(points)))
            certified = [by_point[p]["certified"] or 0.0 for p in points]
            ax.barh(ys, certified, color=COLOURS["robust"], height=0.7, label="certified radius")
            refuted = [(y, by_point[p]["refuted"]) for y, p in zip(ys, points) if by_point[p]["refuted"] is not None]
            if refuted:
                ax.scatter([d for _, d in refuted], [y for y, _ in refuted], marker="|", s=80,
                           color=COLOURS["not robust"], label="smallest delta not robust", zorder=3)
            ax.set_ylim(len(points) - 0.5, -0.5)
            ax.set_yticks(range(0, len(points), step))
            ax.set_yticklabels([str(points[i]) for i in range(0, len(points), step)])
            ax.set_xlim(0, max(deltas) * 1.05 if max(deltas) > 0 else 1.0)
            ax.set_xlabel("delta")
            ax.set_title("certified radius within the sweep", fontsize=9)
            ax.legend(fontsize=7, loc="best")
    handles = [Patch(color=c, label=v) for v, c in COLOURS.items()] + [Patch(facecolor=MISSING, edgecolor="#999999",
                                                                             label="no result")]
    # the constrained layout keeps the title (top), the legend (bottom, outside the panels) and the panels apart
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles) if several else 4, fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
