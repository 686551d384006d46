"""Robustness properties compiled to :class:`~reluverify.query.Query` values.

One module per property kind; each has a frozen dataclass, a subclass of
:class:`~reluverify.properties.base.Property`, that compiles to a query (or, for global robustness
with partitions, one query per sub-domain); the base decides the queries and interprets the
solver's answer as a :class:`~reluverify.properties.result.PropertyResult`. Every property is
registered once in :mod:`~reluverify.properties.registry`, which the command line, the sweep
worker and the API read:

* :mod:`~reluverify.properties.local` -- Def. 1, delta-local robustness (L-infinity or L1);
* :mod:`~reluverify.properties.eps_local` -- Def. 3, (delta, eps)-local robustness;
* :mod:`~reluverify.properties.global_robustness` -- Def. 2, (delta, eps)-global robustness;
* :mod:`~reluverify.properties.max_delta` -- the largest delta for which Def. 1 holds (a search over Def. 1);
* :mod:`~reluverify.properties.runner` -- a property's queries, sequentially or in worker processes;
* :mod:`~reluverify.properties.inputs` -- points (with their labels and domain) and labels, read by one
  reader for every command; :mod:`~reluverify.properties.domains` -- box domains (files and ``LO:HI``);
  :mod:`~reluverify.properties.input_files` -- the JSON, CSV, ``.npy`` and ``.npz`` readers under both;
* :mod:`~reluverify.properties.export` -- counterexamples as JSON and .npz.

The solver never learns which property a query came from.
"""
