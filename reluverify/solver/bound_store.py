"""Variable bounds with a trail: tighten freely, ``pop`` restores exactly.

The store keeps ``lower[i] <= upper[i]`` for all variables except transiently inside a
conflict, which :meth:`tighten` reports instead of storing an inverted interval. Every
change is recorded on the trail; :meth:`push` marks a decision level and :meth:`pop`
undoes all changes since the matching :meth:`push`, bit for bit.
"""

from __future__ import annotations

import numpy as np


class BoundStore:
    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        self.lower = np.array(lower, dtype=np.float64)
        self.upper = np.array(upper, dtype=np.float64)
        self._trail: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._levels: list[int] = []

    @property
    def level(self) -> int:
        return len(self._levels)

    def push(self) -> None:
        self._levels.append(len(self._trail))

    def pop(self) -> None:
        mark = self._levels.pop()
        while len(self._trail) > mark:
            index, old_lower, old_upper = self._trail.pop()
            self.lower[index] = old_lower
            self.upper[index] = old_upper

    def pop_to(self, level: int) -> None:
        while len(self._levels) > level:
            self.pop()

    def tighten(
        self,
        index: np.ndarray,
        new_lower: np.ndarray | None = None,
        new_upper: np.ndarray | None = None,
        tolerance: float = 1e-9,
        min_change: float = 0.0,
    ) -> tuple[int, bool]:
        """Intersect the bounds of ``index`` with the given ones.

        Returns (number of bounds changed, conflict). A conflict (some new lower bound
        above the upper bound by more than ``tolerance``) changes nothing. Bounds that cross
        by at most ``tolerance`` are merged into a point. Changes smaller than
        ``min_change`` are ignored (they buy nothing and cost trail entries).
        """
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        lo = self.lower[index].copy()
        hi = self.upper[index].copy()
        cand_lo = lo if new_lower is None else np.maximum(lo, np.broadcast_to(new_lower, lo.shape))
        cand_hi = hi if new_upper is None else np.minimum(hi, np.broadcast_to(new_upper, hi.shape))
        if np.any(cand_lo > cand_hi + tolerance):
            return 0, True
        crossed = cand_lo > cand_hi
        if np.any(crossed):
            # bounds that cross by less than the tolerance become one point; both sides are set
            # (the point may lie just outside the old interval, so one side may even loosen)
            point = 0.5 * (cand_lo + cand_hi)
            cand_lo = np.where(crossed, point, cand_lo)
            cand_hi = np.where(crossed, point, cand_hi)
        changed_lo = (cand_lo > lo + min_change) | crossed
        changed_hi = (cand_hi < hi - min_change) | crossed
        changed = changed_lo | changed_hi
        if not np.any(changed):
            return 0, False
        which = index[changed]
        self._trail.append((which, lo[changed], hi[changed]))
        self.lower[which] = np.where(changed_lo[changed], cand_lo[changed], lo[changed])
        self.upper[which] = np.where(changed_hi[changed], cand_hi[changed], hi[changed])
        return int(np.sum(changed_lo) + np.sum(changed_hi)), False

    def set_bounds(self, index: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        """Replace (not intersect) bounds, recorded on the trail (used to load a box)."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        self._trail.append((index.copy(), self.lower[index].copy(), self.upper[index].copy()))
        self.lower[index] = lower
        self.upper[index] = upper
