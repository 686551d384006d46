"""The decision procedure for queries on networks with general activations and products (SRU, attention, ...).

``solve_nonlinear(query, options)`` decides the whole query (every disjunct):

1. **Falsification.** Uniform samples in each disjunct's box, then a projected gradient attack
   (numpy reverse mode through the DAG) from the box centre and random starts. Every point that
   satisfies a disjunct in float64 goes to :func:`reluverify.solver.confirm.confirm`
   (onnxruntime on the ONNX file): ``sat`` is returned only for a confirmed counterexample.
2. **Branch and bound.** Disjuncts sharing a box are searched together, each box carrying the
   set of disjuncts still *alive* on it. A batch of boxes is bounded at once
   (:mod:`~reluverify.solver.nonlinear.bounds`: back-substitution with tangent/chord and
   McCormick relaxations, re-linearised at each row's minimising vertex -- incremental
   linearisation); a disjunct dies on a box when one of its rows provably exceeds its right-hand
   side there. Each surviving box proposes candidates -- its centre, the vertex minimising each
   alive disjunct's tightest row's linear bound, and a few gradient steps from there -- and is
   then split in two (:mod:`~reluverify.solver.nonlinear.splitting`): along an input dimension,
   or by cutting the interval of one relaxed value (a sigmoid/tanh/ReLU input or a product
   operand) into two clamped halves, per ``NonlinearOptions.split``.
3. **Verdict.** ``unsat`` when every box is pruned for every disjunct; ``timeout`` when
   ``options.timeout`` runs out; ``unknown`` when the box budget runs out or a box becomes too
   narrow to split without being decided (e.g. a counterexample exactly on the boundary that
   float32 cannot confirm), each with its reason.

Soundness: the boxes on the stack (each a box plus clamps of relaxed values, the two halves of a
relaxation split covering its parent), each with its alive set, always cover every counterexample
not yet ruled out, and a disjunct is dropped from a box only by a sound lower bound. Splitting
input boxes makes every relaxation exact in the limit (the gap of a tangent, chord or McCormick
plane shrinks with the square of the interval width), so with ``input`` or ``alternate``
splitting the procedure is complete in the limit for queries whose answer is not on a boundary;
the budget decides what "the limit" is in practice.

**ReLUs** inside such a network are relaxed by the triangle relaxation (sound, not exact);
input splitting makes them exact in the limit, and a relaxation split of a ReLU input at 0 fixes
its phase (the relaxation is then exact), the analogue of a Reluplex case split. The exact
Reluplex procedure of :mod:`reluverify.solver.decide` handles networks that are ReLU-only
(``solve`` dispatches); a mixed network's ReLUs are decided here, by bounds and splits only.

**Statistics:** ``boxes`` bounded, ``leaves`` closed by bounds, ``splits`` (``input_splits`` of
them along input dimensions, the rest relaxation splits, ``relu_splits`` of which cut a ReLU
input), ``candidates_checked`` points evaluated
during the search, ``candidates_rejected`` confirmations that failed, ``falsification_samples``
network evaluations spent proposing points, ``max_depth``.

**Input rows / auxiliary variables** (an L1 ball): bounds are computed over each box (a hull of
its part of the polytope), boxes are shrunk by the rows' interval propagation, a row's linear
bound is minimised over box ∩ polytope by a duality bound (:mod:`~reluverify.solver.nonlinear.region`),
and candidates are moved into the polytope before they are confirmed.
"""

from __future__ import annotations

import time

import numpy as np

from reluverify.query import Query
from reluverify.solver.confirm import confirm
from reluverify.solver.falsify import random_samples
from reluverify.solver.nonlinear.attack import pgd, relative_violations, stack_rows
from reluverify.solver.nonlinear.bounds import Layout, linearised_row_bounds, node_bounds
from reluverify.solver.nonlinear.options import NonlinearOptions
from reluverify.solver.nonlinear.problem import Problem, Target, build_problem
from reluverify.solver.nonlinear.region import Region
from reluverify.solver.nonlinear.splitting import RelaxationScorer, input_influence
from reluverify.solver.options import SolverOptions
from reluverify.solver.result import SAT, TIMEOUT, UNKNOWN, UNSAT, Counterexample, Result, Statistics


def solve_nonlinear(query: Query, options: SolverOptions | NonlinearOptions | None = None) -> Result:
    """Decide ``query`` on any DAG network (see the module docstring); sound, may answer ``unknown``."""
    if options is None:
        options = NonlinearOptions()
    elif isinstance(options, SolverOptions):
        options = NonlinearOptions.from_solver_options(options)
    return _Search(query, options).run()


class _Search:
    def __init__(self, query: Query, options: NonlinearOptions) -> None:
        self.query = query
        self.options = options
        self.start = time.monotonic()
        self.deadline = None if options.timeout is None else self.start + options.timeout
        self.stats = Statistics()
        self.problem: Problem = build_problem(query)
        self.network = self.problem.network
        self.layout = Layout(self.network)
        self.scorer = RelaxationScorer(self.network, self.layout)
        split = options.split
        if split == "auto":
            split = "input" if query.num_network_inputs <= options.input_split_max_inputs else "alternate"
        self.split = split if self.layout.size else "input"
        self.region = Region(query.input_constraints, query.lower, query.upper, query.num_network_inputs)
        self.verdicts = [UNKNOWN] * len(query.disjuncts)
        for k, d in enumerate(query.disjuncts):
            if d.is_empty_box():
                self.verdicts[k] = UNSAT
        self.found: Counterexample | None = None
        self.reasons: list[str] = []
        self.rng = np.random.default_rng(options.seed)

    # ---------------------------------------------------------------- helpers
    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def try_confirm(self, point: np.ndarray, target: Target) -> bool:
        """Confirm ``point`` for ``target`` (moved into the input rows' polytope first, if any)."""
        v = self.region.repair(np.asarray(point, dtype=np.float64), target.lower, target.upper)
        cex = None if v is None else confirm(self.query, v, self.options.confirm_tolerance, target.index)
        if cex is None:
            self.stats.candidates_rejected += 1
            return False
        self.found = cex
        return True

    def confirm_best(self, points: np.ndarray, owners: np.ndarray, targets: list[Target], limit: int = 4) -> bool:
        """Confirm up to ``limit`` of the points (point i proposed for ``targets[owners[i]]``) that satisfy
        their target in float64 up to the confirmation tolerance, most violating first."""
        rows, rhs = stack_rows([t.rows for t in targets], [t.rhs for t in targets])
        values = relative_violations(points, self.network.evaluate(points), rows[owners], rhs[owners])
        for i in np.argsort(values)[:limit]:
            if values[i] > self.options.confirm_tolerance:
                break
            if self.try_confirm(points[i], targets[owners[i]]):
                return True
        return False

    def result(self, verdict: str, reason: str = "") -> Result:
        return Result.of_run(verdict, self.found, self.stats, self.start, reason, self.verdicts)

    # ---------------------------------------------------------------- falsification
    def falsify(self, targets: list[Target]) -> bool:
        opts = self.options
        if not opts.falsify:
            return False
        n = self.network.input_size
        for target in targets:
            samples = random_samples(self.rng, target.lower, target.upper, opts.random_samples)
            self.stats.falsification_samples += samples.shape[0]
            if self.confirm_best(samples, np.zeros(len(samples), dtype=int), [target]):
                return True
            if self.timed_out():
                return False
        # one gradient attack for all targets together
        starts, owners = [], []
        for t, target in enumerate(targets):
            centre = 0.5 * (target.lower + target.upper)
            extra = self.rng.uniform(target.lower, target.upper, size=(max(opts.attack_restarts - 1, 0), n))
            starts.append(np.concatenate([centre[None], extra]))
            owners += [t] * (1 + extra.shape[0])
        owners = np.array(owners)
        rows, rhs = stack_rows([t.rows for t in targets], [t.rhs for t in targets])
        lower = np.stack([targets[t].lower for t in owners])
        upper = np.stack([targets[t].upper for t in owners])
        points, _ = pgd(self.network, np.concatenate(starts), lower, upper, rows[owners], rhs[owners], opts.attack_steps)
        self.stats.falsification_samples += points.shape[0] * opts.attack_steps
        return self.confirm_best(points, owners, targets, limit=8)

    # ---------------------------------------------------------------- branch and bound
    def branch_and_bound(self, targets: list[Target]) -> str:
        """Search the shared box of ``targets``; returns ``sat``, ``unsat``, ``unknown`` or ``timeout``."""
        opts = self.options
        n = self.network.input_size
        d = len(targets)
        rows = np.vstack([t.rows for t in targets])
        rhs = np.concatenate([t.rhs for t in targets])
        owner = np.concatenate([np.full(t.rhs.shape[0], k) for k, t in enumerate(targets)]).astype(int)
        owns = owner[None, :] == np.arange(d)[:, None]  # (D, R)
        padded_rows, padded_rhs = stack_rows([t.rows for t in targets], [t.rhs for t in targets])
        root_lo, root_hi = targets[0].lower, targets[0].upper
        narrowest = self.options.min_width * np.maximum(root_hi - root_lo, 1e-300)
        size = self.layout.size
        stack = _BoxStack(n, d, size)
        stack.push(root_lo[None], root_hi[None], np.ones((1, d), bool), np.zeros(1, int),
                   np.full((1, size), -np.inf), np.full((1, size), np.inf))
        undecided = np.zeros(d, dtype=bool)
        status = UNSAT
        while stack.size:
            if self.timed_out():
                status = TIMEOUT
                self.reasons.append("time budget exhausted in branch and bound")
                break
            if opts.max_boxes is not None and self.stats.boxes >= opts.max_boxes:
                status = UNKNOWN
                self.reasons.append(f"box budget of {opts.max_boxes} exhausted in branch and bound")
                break
            lo, hi, alive, depth, klo, khi = stack.pop(opts.batch_size)
            self.stats.boxes += lo.shape[0]
            if self.region.active:
                lo, hi, empty = self.region.tighten(lo, hi)
                keep = ~empty
                lo, hi, alive, depth, klo, khi = lo[keep], hi[keep], alive[keep], depth[keep], klo[keep], khi[keep]
                self.stats.leaves += int(empty.sum())
                if not lo.shape[0]:
                    continue
            bounds = node_bounds(self.network, lo, hi, self.layout, klo, khi, rounds=opts.intermediate_rounds)
            rb = linearised_row_bounds(self.network, bounds, lo, hi, rows, rhs, opts.row_rounds)
            lower = np.where(bounds.empty[:, None], np.inf, rb.lower)
            if self.region.active:
                lower = self._polytope_bounds(lower, rb.coef, rb.const, lo, hi, alive, owner)
            refuted = lower > opts.prune_margin
            alive &= ~(refuted[:, None, :] & owns[None]).any(axis=2)
            keep = alive.any(axis=1)
            self.stats.leaves += int((~keep).sum())
            lo, hi, alive, depth, klo, khi = lo[keep], hi[keep], alive[keep], depth[keep], klo[keep], khi[keep]
            coef, lower = rb.coef[keep], lower[keep]
            if not lo.shape[0]:
                continue
            tight = np.where(owns[None], lower[:, None, :], -np.inf).argmax(axis=2)  # (B, D): each target's tightest row
            if self._candidates(lo, hi, alive, coef, tight, targets, padded_rows, padded_rhs):
                return SAT
            # split: a relaxation interval (where chosen and useful), else the most influential input dimension
            width = hi - lo
            influence = input_influence(np.take_along_axis(coef, tight[:, :, None], axis=1), alive, width)
            splittable = width > narrowest
            influence = np.where(splittable, influence + 1e-12 * width, -1.0)
            value_split = np.zeros(lo.shape[0], dtype=bool)
            if self.split in ("relaxation", "alternate"):
                flat_lo, flat_hi = (a[keep] for a in bounds.flat(self.layout))
                scores = self.scorer.scores(_select(bounds, keep), rows[tight], alive)
                scores = np.where(flat_hi - flat_lo > opts.min_width * (1.0 + np.abs(flat_lo) + np.abs(flat_hi)), scores, 0.0)
                value = scores.argmax(axis=1)
                at = np.arange(lo.shape[0])
                value_split = scores[at, value] > 0
                if self.split == "alternate":
                    value_split &= (depth % 2 == 1) | ~splittable.any(axis=1)
            stuck = ~value_split & ~splittable.any(axis=1)
            if np.any(stuck):
                undecided |= alive[stuck].any(axis=0)
                go = ~stuck
                lo, hi, alive, depth, klo, khi, influence, value_split = (
                    a[go] for a in (lo, hi, alive, depth, klo, khi, influence, value_split)
                )
                if self.split in ("relaxation", "alternate"):
                    flat_lo, flat_hi, value = flat_lo[go], flat_hi[go], value[go]
                if not lo.shape[0]:
                    continue
            at = np.arange(lo.shape[0])
            left_lo, left_hi, right_lo, right_hi = lo.copy(), hi.copy(), lo.copy(), hi.copy()
            left_klo, left_khi, right_klo, right_khi = klo.copy(), khi.copy(), klo.copy(), khi.copy()
            dim = influence.argmax(axis=1)
            middle = 0.5 * (lo[at, dim] + hi[at, dim])
            by_input = ~value_split
            left_hi[at[by_input], dim[by_input]] = middle[by_input]
            right_lo[at[by_input], dim[by_input]] = middle[by_input]
            if np.any(value_split):
                b, e = at[value_split], value[value_split]
                cut = self.scorer.split_points(flat_lo[b, e], flat_hi[b, e], e)
                self.stats.relu_splits += int(self.scorer.relu_input[e].sum())
                left_khi[b, e] = np.minimum(left_khi[b, e], cut)
                right_klo[b, e] = np.maximum(right_klo[b, e], cut)
            self.stats.input_splits += int(by_input.sum())
            self.stats.splits += lo.shape[0]
            self.stats.max_depth = max(self.stats.max_depth, int(depth.max()) + 1)
            stack.push(
                np.concatenate([right_lo, left_lo]),
                np.concatenate([right_hi, left_hi]),
                np.concatenate([alive, alive]),
                np.concatenate([depth + 1, depth + 1]),
                np.concatenate([right_klo, left_klo]),
                np.concatenate([right_khi, left_khi]),
            )
        still = stack.alive[: stack.size].any(axis=0) | undecided
        for k, target in enumerate(targets):
            self.verdicts[target.index] = UNKNOWN if still[k] else UNSAT
        if status == UNSAT and undecided.any():
            self.reasons.append("a box too narrow to split was neither pruned nor confirmed (a boundary case)")
            return UNKNOWN
        return status

    def _polytope_bounds(self, lower, coef, const, lo, hi, alive, owner) -> np.ndarray:
        """Tighten the rows' lower bounds that the box alone does not refute by the input rows' polytope."""
        lower = lower.copy()
        for b, r in zip(*np.nonzero((lower <= self.options.prune_margin) & alive[:, owner])):
            lower[b, r] = max(lower[b, r], self.region.lower_bound(coef[b, r], const[b, r], lo[b], hi[b]))
        return lower

    def _candidates(self, lo, hi, alive, coef, tight, targets, padded_rows, padded_rhs) -> bool:
        """Box centres, the vertices minimising each alive target's tightest row, and a short attack from them."""
        chosen = np.take_along_axis(coef, tight[:, :, None], axis=1)  # (B, D, n)
        vertices = np.where(chosen > 0, lo[:, None, :], hi[:, None, :])
        box, target = np.nonzero(alive)
        centres = 0.5 * (lo + hi)
        points = np.concatenate([centres[box], vertices[box, target]])
        owners = np.concatenate([target, target])
        boxes = np.concatenate([box, box])
        steps = self.options.box_attack_steps
        found, _ = pgd(self.network, points, lo[boxes], hi[boxes], padded_rows[owners], padded_rhs[owners], steps)
        self.stats.candidates_checked += points.shape[0]
        self.stats.falsification_samples += points.shape[0] * max(steps, 1)
        return self.confirm_best(found, owners, targets, limit=8)

    # ---------------------------------------------------------------- driver
    def run(self) -> Result:
        targets = list(self.problem.targets)
        if not targets:
            return self.result(UNSAT, "every disjunct has an empty input region")
        if self.falsify(targets):
            return self.result(SAT)
        if self.timed_out():
            return self.result(TIMEOUT, "time budget exhausted during falsification")
        groups: dict[tuple[bytes, bytes], list[Target]] = {}
        for target in targets:
            groups.setdefault((target.lower.tobytes(), target.upper.tobytes()), []).append(target)
        final = UNSAT
        for members in groups.values():
            if self.timed_out():
                final = TIMEOUT
                self.reasons.append("time budget exhausted in branch and bound")
                break
            status = self.branch_and_bound(members)
            if status == SAT:
                return self.result(SAT)
            if status == TIMEOUT:
                final = TIMEOUT
                break
            if status == UNKNOWN:
                final = UNKNOWN
        reason = "; ".join(dict.fromkeys(self.reasons))
        if final == UNSAT and all(v == UNSAT for v in self.verdicts):
            return self.result(UNSAT)
        return self.result(final if final != UNSAT else UNKNOWN, reason or "undecided")


def _select(bounds, keep: np.ndarray):
    """The bounds of the kept boxes only (relaxations included)."""
    from reluverify.solver.nonlinear.bounds import DagBounds

    relaxations = {k: type(r)(*(a[keep] for a in r)) for k, r in bounds.relaxations.items()}
    return DagBounds([a[keep] for a in bounds.lower], [a[keep] for a in bounds.upper], relaxations, bounds.empty[keep])


class _BoxStack:
    """A LIFO of boxes in growing numpy arrays: lower, upper, alive mask, depth, and the clamps of
    relaxation splits (lower and upper, over the bounds' layout of relaxed values)."""

    def __init__(self, n: int, d: int, clamps: int) -> None:
        self.arrays = [np.zeros((64, n)), np.zeros((64, n)), np.zeros((64, d), dtype=bool),
                       np.zeros(64, dtype=np.int64), np.zeros((64, clamps)), np.zeros((64, clamps))]
        self.size = 0

    @property
    def alive(self) -> np.ndarray:
        return self.arrays[2]

    def push(self, *parts) -> None:
        k = parts[0].shape[0]
        while self.size + k > self.arrays[0].shape[0]:
            self.arrays = [np.concatenate([a, np.zeros_like(a)]) for a in self.arrays]
        for array, part in zip(self.arrays, parts):
            array[self.size : self.size + k] = part
        self.size += k

    def pop(self, k: int):
        k = min(k, self.size)
        out = tuple(a[self.size - k : self.size].copy() for a in self.arrays)
        self.size -= k
        return out
