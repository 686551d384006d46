"""Branch and bound over the input box (for networks with few inputs, like ACAS Xu's 5).

Several disjuncts that share one input box are searched together: every box carries
the set of disjuncts still *alive* on it. Boxes are bounded in batches with
:func:`~reluverify.solver.bounds.deeppoly.deeppoly_bounds` and
:func:`~reluverify.solver.bounds.rows.row_lower_bounds`; a disjunct dies on a box when one of its
rows provably exceeds its right-hand side there. Each bounded box also proposes
concrete points (its centre and the vertices that minimise its rows' linear lower
bounds), which are evaluated and, if they satisfy a disjunct, confirmed. A box on which
only a few ReLUs remain unstable (or that was split many times) is a *residue*: it goes to
the Reluplex engine of each alive disjunct, which decides it exactly. Otherwise the box is
split in two along the input dimension with the largest influence on the rows that are
closest to being refuted.

Invariant: the union of the boxes on the stack, each with its alive set, covers every
possible counterexample not yet ruled out; the search is ``unsat`` when the stack empties.

Modules, each importing only those listed before it:

* :mod:`.parameters` -- where a box's ascent parameters sit in one flat row (handed to its children);
* :mod:`.problem` -- the targets and the optimised bounds that refute them on boxes;
* :mod:`.boxes` -- a batch of boxes as one structure, the stack, the shrinking by input rows;
* :mod:`.candidates` -- counterexample candidates and the attacks inside boxes;
* :mod:`.proof` -- the proof recorder, and the steps a proof does differently;
* :mod:`.search` -- the search loop and its phases.
"""

from reluverify.solver.input_split.boxes import Boxes, BoxStack, tighten_boxes
from reluverify.solver.input_split.candidates import vertex_points
from reluverify.solver.input_split.problem import Target
from reluverify.solver.input_split.search import input_split_search

__all__ = ["Boxes", "BoxStack", "Target", "input_split_search", "tighten_boxes", "vertex_points"]
