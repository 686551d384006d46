"""Robustness sweeps: many queries (networks x points x deltas x epsilons) into a crash-safe SQLite store.

One module per concern, data flowing one way::

    points file --> plan (jobs with stable keys) --> backend (local processes or Ray) --> store (SQLite)
    inputs.py        plan.py                          backends.py, worker.py              store.py
                                                                                             |
                                                                report.py, plot.py  <--------+

* :func:`reluverify.properties.inputs.read_point_set` -- the points file (and the labels and domain
  it carries), read as every command reads points;
* :mod:`~reluverify.sweep.plan` -- the deterministic list of :class:`~reluverify.sweep.plan.Job`
  values; a job's key hashes the network's sha256, the point's bytes and the property's
  parameters, so the same sweep run twice has the same keys (this is what resuming relies on);
* :mod:`~reluverify.sweep.worker` -- what runs in a worker: one property check, plain data out;
* :mod:`~reluverify.sweep.backends` -- the local process pool (default) and Ray; both kill a
  query that overruns its timeout, retry a query whose worker died once, and report ``error``
  with the reason after that;
* :mod:`~reluverify.sweep.store` -- the SQLite results store (WAL, one transaction per finished
  query, a UNIQUE key so rows are never duplicated);
* :mod:`~reluverify.sweep.run` -- the loop tying them together (resume, progress bar, ordering);
* :mod:`~reluverify.sweep.report` / :mod:`~reluverify.sweep.plot` -- tables and a picture;
* :mod:`~reluverify.sweep.evaluation` -- the evaluation points (and true labels) of ``reluverify
  verify`` without ``--point``: a points file, or those a network's model card names;
* :mod:`~reluverify.sweep.accuracy` -- certified robust accuracy per delta from the rows;
* :mod:`~reluverify.sweep.evidence` -- a row's counterexample written as ``verify --cex-out`` writes it.
"""
