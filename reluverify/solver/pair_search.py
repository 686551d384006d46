"""The largest output change over the pairs of a domain at distance at most delta, as an anytime bracket.

For a ReLU chain ``y``, a box domain ``D`` and a radius ``delta`` (L-inf or L1), output ``l`` changes by
at most ``eps*_l = sup |y_l(x2) - y_l(x1)|`` over the pairs of ``D`` with ``||x2 - x1|| <= delta``. The
pair set is symmetric (swapping ``x1`` and ``x2`` flips the sign), so ``eps*_l`` is also the supremum of
``y_l(x2) - y_l(x1)`` alone, and only that is bounded.

**Upper bounds.** The pairs are covered by *pieces*: a box of ``x1`` times a box of the difference
``d = x2 - x1`` (at first the domain times the whole ``delta``-cube); each piece's pairs are bounded by
:func:`~reluverify.solver.bounds.differential.difference_bounds`. A piece whose bound cannot raise the
answer any more (at most the best difference found) is *settled*; the others are split in two along
the coordinate of ``x1`` or of ``d`` whose influence on the outputs times its width is largest,
largest bound first, so the upper bound falls fastest (splitting ``d`` is what pins down a ReLU that a
large ``delta`` would leave unstable in the second copy). A half's bound is at most its parent's, the
parent's pairs being a superset. ``upper_l`` is the largest bound of output ``l`` over the open pieces
and those settled: every pair lies in one of them.

**Lower bounds.** Concrete pairs: the vertex each box's linear bound points to, and projected gradient
ascent over ``(x1, d)`` (:mod:`~reluverify.solver.pair_attack`) from the most promising ones. A pair
counts only once ``confirm`` (onnxruntime, in the caller) has measured its difference.

Two ways to stop: at a relative ``gap`` (``(upper - lower) / lower``), or, given a ``threshold``
``eps``, as soon as a confirmed pair reaches it (a violation of Def. 2) or every piece's bound is below
it (Def. 2 holds; the first round's bounds run before any attack, which is skipped once they decide);
the deadline ends either with the bracket reached so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds.deeppoly import LayerBounds, deeppoly_bounds
from reluverify.solver.bounds.differential import difference_bounds, pair_region
from reluverify.solver.bounds.rows import gradient_magnitude
from reluverify.solver.pair_attack import pair_attack, vertex_starts, within

BATCH = 128
"""Boxes split per round (two children each)."""
ATTACK_SAMPLES = 4096
"""Random first points of each attack from the whole domain (each with every vertex of the cube as its
difference, for few inputs); the best of them are ascended ..."""
ATTACK_STARTS = 64
"""... this many ..."""
ATTACK_STEPS = 40
"""... for this many gradient steps."""
ATTACK_SHARE = 0.5
"""The attacks take about this share of the search's time (alternately from random points and from
the open boxes with the largest bounds); the bounds the rest."""
SCREEN_BLOCK = 2048
"""Starts evaluated at a time (the network's activations of a block stay a few MB)."""
VERTEX_INPUTS = 8
"""Random starts take every vertex of the L-inf cube as ``d`` for networks of at most this many inputs."""

Confirm = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]
"""``confirm(x1, x2)``: the pair's output differences ``y(x2) - y(x1)`` measured by the reference
(onnxruntime), or None when the pair is not one of the property."""


@dataclass
class PairBracket:
    """Where the search stands: per output the best confirmed difference (``lower``, with its pair) and
    a certified bound (``upper``); the share of the domain settled; why it stopped."""

    lower: np.ndarray
    upper: np.ndarray
    pairs: list
    settled: float
    boxes: int
    open_boxes: int
    seconds: float
    status: str = "running"
    """``gap`` (the bracket is within the gap), ``settled`` (no box left), ``violated`` / ``holds``
    (the threshold is reached by a pair / bounded everywhere), ``timeout``."""
    history: list = field(default_factory=list)
    """(seconds, lower, upper) each time the bracket moved."""

    @property
    def best(self) -> int:
        return int(np.argmax(self.lower))

    @property
    def overall(self) -> tuple[float, float]:
        """(lower, upper) over every output."""
        return float(self.lower.max()), float(self.upper.max())


class PairSearch:
    """The search of the module docstring for one chain, domain, radius and norm."""

    def __init__(self, chain: ReluChain, lower: np.ndarray, upper: np.ndarray, delta: float, norm: str,
                 confirm: Confirm, seed: int = 0, attack: bool = True) -> None:
        self.chain, self.delta, self.norm, self.confirm = chain, float(delta), norm, confirm
        self.attacks = attack
        self.domain = (np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))
        self.rng = np.random.default_rng(seed)
        m = chain.output_size
        self.best = np.full(m, -np.inf)
        self.pairs: list = [None] * m
        widths = self.domain[1] - self.domain[0]
        self.free = widths > 0  # volume is measured over the inputs that vary
        self.volume = float(np.prod(widths[self.free])) if np.any(self.free) else 1.0
        self.open_lower = self.domain[0][None].copy()
        self.open_upper = self.domain[1][None].copy()
        # the differences the domain allows: a delta wider than the domain is cut to it (exactly)
        self.open_dlower = np.maximum(-self.delta, -widths)[None]
        self.open_dupper = np.minimum(self.delta, widths)[None]
        self.d_widths = self.open_dupper[0] - self.open_dlower[0]
        self.open_bound = np.full((1, m), np.inf)
        self.open_dim = self.split_dims(self.open_lower, self.open_upper, self.open_dlower, self.open_dupper,
                                        self.open_bound, deeppoly_bounds(chain, self.open_lower, self.open_upper))
        self.dropped = np.full(m, -np.inf)  # the largest bound of every settled box, per output
        self.settled = 0.0
        self.boxes = 0
        self.rounds = 0

    # ------------------------------------------------------------------ bounds
    def bound(self, lower, upper, dlower, dupper) -> tuple[np.ndarray, np.ndarray, LayerBounds]:
        """Each piece's upper bounds of ``y(x2) - y(x1)`` (B, m; -inf for a piece without pairs), its
        linear bound's coefficients over ``d``, and the chain's layer bounds on its box of ``x1`` (which
        :meth:`split_dims` reads too)."""
        region = pair_region(lower, upper, *self.domain, self.delta, self.norm, dlower, dupper)
        empty = np.any(region.d_lower > region.d_upper, axis=1) | np.any(region.lower2 > region.upper2, axis=1)
        m = self.best.shape[0]
        bound, coef = np.full((lower.shape[0], m), -np.inf), np.zeros((lower.shape[0], m, lower.shape[1]))
        first = deeppoly_bounds(self.chain, lower, upper)
        if not np.all(empty):
            found = difference_bounds(self.chain, region.take(~empty), first=first.take(~empty))
            bound[~empty], coef[~empty] = found.upper, found.upper_coef
        self.boxes += lower.shape[0]
        return bound, coef, first

    def upper(self) -> np.ndarray:
        opened = self.open_bound.max(axis=0) if self.open_bound.size else np.full(self.best.shape, -np.inf)
        return np.maximum.reduce([opened, self.dropped, self.best])

    def bracket(self, started: float, status: str = "running") -> PairBracket:
        return PairBracket(self.best.copy(), self.upper(), list(self.pairs), self.settled,
                           self.boxes, self.open_lower.shape[0], time.monotonic() - started, status)

    # ------------------------------------------------------------------ pairs
    def offer(self, x1: np.ndarray, x2: np.ndarray, outputs: np.ndarray, values: np.ndarray, count: int = 8) -> None:
        """Confirm the ``count`` pairs with the largest float64 differences that beat the best of their
        output, and keep those onnxruntime confirms (each ``x2`` first made a pair of the property in
        float64, :func:`~reluverify.solver.pair_attack.within`)."""
        x2 = within(x1, x2, *self.domain, self.delta, self.norm)
        order = np.argsort(-values)
        tried = 0
        for i in order:
            if tried >= count or not values[i] > self.best[outputs[i]]:
                break
            tried += 1
            measured = self.confirm(x1[i], x2[i])
            if measured is None:
                continue
            better = measured > self.best
            self.best = np.where(better, measured, self.best)
            for l in np.flatnonzero(better):
                self.pairs[l] = (x1[i].copy(), x2[i].copy())

    def attack(self, x1: np.ndarray, d: np.ndarray) -> None:
        """Screen the starts on every output, then ascend the best ones on their best output."""
        diff = np.concatenate([self.chain.evaluate(x1[s:s + SCREEN_BLOCK] + d[s:s + SCREEN_BLOCK])
                               - self.chain.evaluate(x1[s:s + SCREEN_BLOCK])
                               for s in range(0, x1.shape[0], SCREEN_BLOCK)])
        magnitude = np.abs(diff)
        output = magnitude.argmax(axis=1)
        flip = diff[np.arange(len(output)), output] < 0  # the swapped pair has the positive difference
        x1, d = np.where(flip[:, None], x1 + d, x1), np.where(flip[:, None], -d, d)
        top = np.argsort(-magnitude.max(axis=1))[:ATTACK_STARTS]
        first, second, values = pair_attack(self.chain, *self.domain, self.delta, self.norm, x1[top], d[top],
                                            output[top], ATTACK_STEPS)
        self.offer(first, second, output[top], values)

    def attack_random(self, count: int) -> None:
        """Starts with ``x1`` uniform in the domain; with few inputs and the L-inf norm, ``d`` at every
        vertex of the cube for each (a locally linear network changes most at one of them)."""
        n = self.domain[0].shape[0]
        if self.norm == "inf" and n <= VERTEX_INPUTS:
            signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * n)).reshape(n, -1).T
            x1 = np.repeat(self.rng.uniform(*self.domain, size=(count, n)), signs.shape[0], axis=0)
            d = np.tile(self.delta * signs, (count, 1))
            self.attack(x1, np.clip(d, self.domain[0] - x1, self.domain[1] - x1))
        else:
            self.attack(*vertex_starts(self.rng, *self.domain, self.delta, self.norm, count))

    def attack_boxes(self, lower, upper, dlower, dupper, coef: np.ndarray) -> None:
        """Starts in the pieces: random ``x1``, and ``d`` at the vertex the piece's bound of its largest
        output points to."""
        output = np.argmax(np.einsum("bmn,bn->bm", np.abs(coef), np.full(lower.shape, self.delta)), axis=1)
        direction = np.sign(coef[np.arange(len(output)), output])
        x1 = self.rng.uniform(lower, upper)
        d = self.delta * direction if self.norm == "inf" else self._l1_vertex(direction, coef, output)
        x1 = np.clip(x1, *self.domain)
        d = np.clip(np.clip(d, dlower, dupper), self.domain[0] - x1, self.domain[1] - x1)
        self.attack(x1, d)

    def _l1_vertex(self, direction, coef, output) -> np.ndarray:
        d = np.zeros(direction.shape)
        strongest = np.abs(coef[np.arange(len(output)), output]).argmax(axis=1)
        d[np.arange(len(output)), strongest] = self.delta * direction[np.arange(len(output)), strongest]
        return d

    # ------------------------------------------------------------------ boxes
    def split_dims(self, lower, upper, dlower, dupper, bound: np.ndarray, layers: LayerBounds) -> np.ndarray:
        """Where each piece is to be halved: the coordinate of ``x1`` (0 to n-1) or of ``d`` (n to 2n-1) whose
        influence on the piece's largest output, times its width, is largest; ``layers`` are the chain's
        bounds on the pieces' boxes of ``x1``."""
        if lower.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        output = np.nan_to_num(bound, neginf=0.0).argmax(axis=1)
        m, n = bound.shape[1], lower.shape[1]
        rows = np.eye(m)[output][:, None, :]
        influence = gradient_magnitude(self.chain, layers, rows, np.zeros((lower.shape[0], 1, n)))[:, 0, :]
        width = np.concatenate([upper - lower, dupper - dlower], axis=1)
        score = np.where(width > 0, np.concatenate([influence, influence], axis=1) * width + 1e-12 * width, -1.0)
        return score.argmax(axis=1)

    @staticmethod
    def split(lower, upper, dlower, dupper, dim: np.ndarray) -> tuple[np.ndarray, ...]:
        """Halve each piece along its coordinate ``dim`` (:meth:`split_dims`): the halves (first halves, then
        second) as (lower, upper, dlower, dupper)."""
        n = lower.shape[1]
        low, high = np.concatenate([lower, dlower], axis=1), np.concatenate([upper, dupper], axis=1)
        index = np.arange(lower.shape[0])
        middle = 0.5 * (low[index, dim] + high[index, dim])
        first_high, second_low = high.copy(), low.copy()
        first_high[index, dim] = middle
        second_low[index, dim] = middle
        low, high = np.concatenate([low, second_low]), np.concatenate([first_high, high])
        return low[:, :n], high[:, :n], low[:, n:], high[:, n:]

    def _share(self, lower, upper, dlower, dupper) -> np.ndarray:
        """Each piece's share of all pairs' pieces: its share of the domain of ``x1`` times its share of the
        differences (the ``delta``-cube cut to the domain's widths)."""
        widths = (upper - lower)[:, self.free]
        x_share = np.prod(widths, axis=1) / self.volume if widths.size else np.ones(lower.shape[0])
        varies = self.d_widths > 0
        d_share = np.prod((dupper - dlower)[:, varies] / self.d_widths[varies], axis=1)
        return x_share * d_share

    def settle(self, lower, upper, dlower, dupper, bound, limit: np.ndarray) -> np.ndarray:
        """Drop the pieces whose every output bound is at most ``limit`` (m,); the mask of those kept."""
        done = np.all(bound <= limit[None, :], axis=1)
        if np.any(done):
            self.dropped = np.maximum(self.dropped, bound[done].max(axis=0))
            self.settled += float(self._share(lower[done], upper[done], dlower[done], dupper[done]).sum())
        return ~done

    def run(self, deadline: float | None, gap: float | None = None, threshold: float | None = None,
            progress: Callable[[PairBracket], None] | None = None) -> PairBracket:
        """Search until the gap, the threshold or the deadline (see the module docstring)."""
        started = time.monotonic()
        self.attack_seconds = 0.0
        if self.attacks and threshold is None:  # with a threshold, bounds go first: they may decide alone
            self.attack_random(ATTACK_SAMPLES)
            self.attack_seconds = time.monotonic() - started
        while True:
            lower, upper = self.best.max(), self.upper().max()
            if threshold is not None and lower >= threshold:
                return self.bracket(started, "violated")
            if threshold is not None and upper < threshold:
                return self.bracket(started, "holds")
            if gap is not None and lower > 0 and upper - lower <= gap * lower:
                return self.bracket(started, "gap")
            if not self.open_bound.size:
                return self.bracket(started, "settled")
            if deadline is not None and time.monotonic() > deadline:
                return self.bracket(started, "timeout")
            self.step(threshold, time.monotonic() - started)
            if progress is not None:
                progress(self.bracket(started))

    def step(self, threshold: float | None, elapsed: float) -> None:
        """One round: the boxes with the largest bounds are split, their halves bounded and settled (and an
        attack, when the attacks are behind their share of the time)."""
        self.rounds += 1
        key = self.open_bound.max(axis=1)
        k = min(BATCH, key.size)
        take = np.argpartition(-key, k - 1)[:k]
        keep = np.ones(key.size, dtype=bool)
        keep[take] = False
        parents = self.open_bound[take]
        lower, upper, dlower, dupper = self.split(self.open_lower[take], self.open_upper[take], self.open_dlower[take],
                                                  self.open_dupper[take], self.open_dim[take])
        self.open_lower, self.open_upper = self.open_lower[keep], self.open_upper[keep]
        self.open_bound = self.open_bound[keep]
        self.open_dlower, self.open_dupper = self.open_dlower[keep], self.open_dupper[keep]
        self.open_dim = self.open_dim[keep]
        bound, coef, first = self.bound(lower, upper, dlower, dupper)
        bound = np.minimum(bound, np.concatenate([parents, parents]))  # a half's pairs are its parent's too
        undecided = threshold is None or self.open_bound.size > 0 or np.any(bound >= threshold)
        if self.attacks and undecided and self.attack_seconds < ATTACK_SHARE * elapsed:
            began = time.monotonic()
            if self.rounds % 2:
                self.attack_random(ATTACK_SAMPLES)
            else:
                worst = np.argsort(-bound.max(axis=1))[:ATTACK_STARTS]
                self.attack_boxes(lower[worst], upper[worst], dlower[worst], dupper[worst], coef[worst])
            self.attack_seconds += time.monotonic() - began
        # a box can raise no output above what a pair reached (or the threshold, when only that matters)
        limit = np.full(self.best.shape, self.best.max()) if threshold is None else np.full(self.best.shape, threshold)
        if threshold is not None:
            limit = np.nextafter(limit, -np.inf)  # strictly below the threshold
        alive = self.settle(lower, upper, dlower, dupper, bound, limit)
        self.open_lower = np.concatenate([self.open_lower, lower[alive]])
        self.open_upper = np.concatenate([self.open_upper, upper[alive]])
        self.open_dlower = np.concatenate([self.open_dlower, dlower[alive]])
        self.open_dupper = np.concatenate([self.open_dupper, dupper[alive]])
        self.open_bound = np.concatenate([self.open_bound, bound[alive]])
        dims = self.split_dims(lower[alive], upper[alive], dlower[alive], dupper[alive], bound[alive],
                               first.take(alive))
        self.open_dim = np.concatenate([self.open_dim, dims])
