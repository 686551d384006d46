"""Sound verification of networks with sigmoid, tanh and elementwise products (SRU classifiers).

Modules: ``relaxations`` (tangent/chord lines, McCormick planes), ``bounds`` (interval and
back-substitution bounds over the DAG, batched over boxes), ``gradient`` (numpy reverse mode
through the IR), ``problem`` (a query as one network and its targets).
"""
