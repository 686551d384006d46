"""Branch and bound over ReLU phases with optimised linear bounds (for networks with many inputs).

Splitting the input box is hopeless when the input has hundreds of dimensions (MNIST: 784);
splitting ReLU phases is not. A *sub-problem* is the disjunct's input region plus a set of
fixed ReLU phases (splits). Each is bounded by :mod:`reluverify.solver.bounds.alpha_crown`: a
back-substitution bound of the disjunct's rows whose slopes (alpha), split multipliers (beta),
input-row multipliers (gamma) and row weights are optimised per sub-problem, warm-started from
its parent. Sub-problems are bounded many at a time as stacked arrays.

The disjuncts of one input box are searched together (*targets*): the sub-problems, their splits
and their re-tightened pre-activation bounds do not depend on the disjunct, only the bound does.
Each sub-problem keeps per target its optimised parameters and its bound, and a target whose bound
is positive is *refuted* there (for good: the children's regions lie in their parent's). A
sub-problem is open while some target is not refuted in it; the bounds are computed for the open
(sub-problem, target) pairs only, as one batch of *items*.

One round takes the sub-problems with the lowest bounds from the pool (the deepest ones when
the pool nears its memory cap), picks one unstable ReLU per sub-problem by *filtered smart
branching* (the candidates with the largest relaxation gap, each scored by the bounds of its two
children), makes both children and optimises their bounds. A child is

* discarded when its bound is positive (no counterexample in it) or its region is empty;
* a *leaf* when no unstable ReLU is left, or it is ``bab.leaf_depth`` splits deep: it goes to
  the Reluplex engine with its phases as bounds, which decides it exactly;
* otherwise put back in the pool.

The point of the box that minimises each bound is a candidate counterexample (checked on the
network, confirmed by onnxruntime); every few rounds a gradient attack starts from those of the
most promising sub-problems.

Invariant: every counterexample of target ``t`` lies in the constrained region of a sub-problem
in the pool in which ``t`` is not refuted, of one being processed, or of a leaf handed to Reluplex
(the two children of a split partition their parent: ``z >= 0`` or ``z <= 0``). The search is
``unsat`` when the pool is empty and every leaf was ``unsat``.

Modules, in the order of the flow: :mod:`.targets` (the disjuncts and the open (sub-problem, target)
pairs), :mod:`.ascent` (iterations and step sizes of every optimised bound), :mod:`.root` (the root's
bounds), :mod:`.pool` (the open sub-problems as stacked arrays), :mod:`.branching` (which ReLU to
split), :mod:`.children` (the children and their new bounds), :mod:`.counterexamples` (candidates
and attacks), :mod:`.recorder` (the proof, when one is asked for) and :mod:`.search` (the loop).
"""

from reluverify.solver.relu_bab.root import RootBounds, RootSolution, bound_root, root_bounds
from reluverify.solver.relu_bab.search import relu_bab_search, searches_jointly
from reluverify.solver.relu_bab.targets import Disjunction

__all__ = ["Disjunction", "RootBounds", "RootSolution", "bound_root", "relu_bab_search", "root_bounds", "searches_jointly"]
