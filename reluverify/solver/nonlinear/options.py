"""Options of the nonlinear procedure: a frozen value derived from :class:`SolverOptions`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from reluverify.solver.options import SolverOptions


@dataclass(frozen=True)
class NonlinearOptions:
    timeout: float | None = 60.0
    """Wall-clock seconds for the whole query; ``None`` means no limit (the box budget still applies)."""
    max_boxes: int | None = 20_000
    """Boxes bounded before the search gives up with ``unknown``; None: no limit but the timeout. The
    search keeps its open boxes on a depth-first stack, so this bounds work, not memory: taken from
    :class:`SolverOptions` it is ``node_budget`` when set, else no limit when there is a timeout."""
    batch_size: int = 16
    """Boxes bounded together in one numpy pass."""
    intermediate_rounds: int = 1
    """Re-linearisation rounds for the bounds of relaxed nodes (0: plain back-substitution)."""
    row_rounds: int = 2
    """Re-linearisation rounds for the disjuncts' rows."""
    split: str = "auto"
    """How undecided boxes are split (see :mod:`~reluverify.solver.nonlinear.splitting`):
    ``input`` (halve an input dimension: every relaxation becomes exact as boxes shrink, so the
    search is complete in the limit), ``relaxation`` (halve the interval of the relaxed value whose
    relaxation costs the bound most; an input dimension only when no such value is left -- not
    complete in the limit, the clamps do not reach the minimisation over the box), ``alternate``
    (relaxation splits at odd depths, input splits at even ones: complete in the limit) or ``auto``:
    ``input`` for at most ``input_split_max_inputs`` input variables, else ``alternate``."""
    input_split_max_inputs: int = 12
    min_width: float = 1e-9
    """An input dimension narrower than this (relative to the query box) is not split further;
    a box with no splittable dimension left that is neither pruned nor confirmed stays undecided."""

    # falsification
    falsify: bool = True
    random_samples: int = 2000
    attack_restarts: int = 8
    attack_steps: int = 60
    box_attack_steps: int = 8
    """Gradient steps from each box's candidate points during the search (0: candidates only)."""
    seed: int = 0

    # verdict checking
    confirm_tolerance: float = 1e-6
    prune_margin: float = 1e-9

    def __post_init__(self) -> None:
        if self.split not in ("auto", "input", "relaxation", "alternate"):
            raise ValueError(f"unknown split {self.split!r}")

    @staticmethod
    def from_solver_options(options: SolverOptions, **overrides) -> "NonlinearOptions":
        """The fields shared with :class:`SolverOptions` taken from it; the rest default (or ``overrides``)."""
        base = NonlinearOptions(
            timeout=options.timeout,
            falsify=options.falsify,
            random_samples=options.attack.samples,
            attack_restarts=options.attack.restarts,
            attack_steps=options.attack.steps,
            seed=options.attack.seed,
            confirm_tolerance=options.tolerances.confirm,
            prune_margin=options.tolerances.prune_margin,
            input_split_max_inputs=options.input_split.max_inputs,
        )
        if options.node_budget is not None:
            base = replace(base, max_boxes=options.node_budget)
        elif options.timeout is not None:
            base = replace(base, max_boxes=None)
        return replace(base, **overrides)
