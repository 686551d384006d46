"""The bound engine: sound bounds of a ReLU chain's neurons and of linear rows over its outputs.

* :mod:`~reluverify.solver.bounds.relaxation` -- the ReLU relaxation (the one definition of its lines);
* :mod:`~reluverify.solver.bounds.deeppoly` -- every layer's bounds on boxes (DeepPoly, symbolic
  intervals, plain intervals);
* :mod:`~reluverify.solver.bounds.rows` -- bounds of linear rows given the layer bounds;
* :mod:`~reluverify.solver.bounds.alpha_crown` -- back-substitution with optimised slopes and
  multipliers (alpha/beta-CROWN): branch and bound's bounds, and input splitting's on deep boxes.

Nothing here knows of properties or of the search: a search asks for bounds of a region.
"""
