"""A sub-problem's network reduced to its free ReLUs, so that Reluplex gets only what the leaf needs.

A leaf of ReLU branch and bound fixes most phases: a neuron is active (``h = z``), inactive
(``h = 0``) or free. On the leaf's region the network is then an affine map of the input and of the
free ReLUs' outputs. :func:`reduced_chain` builds a small dense :class:`~reluverify.network.ReluChain`
with the same inputs and outputs that equals the network wherever the fixed phases hold:

* hidden layer ``k`` of the reduced chain holds the free neurons of layer ``k``, whose pre-activations
  ``A x + sum_j C_j h_j + c`` come from back-substitution through the fixed layers (transposed
  products of the structured weights: a convolution is never made dense);
* the outputs of earlier free neurons (``h >= 0``) are carried forward by identity neurons, exact
  because ``relu(h) = h`` for ``h >= 0``;
* the input enters later layers only through the few directions ``A x`` they need, carried as
  ``p = A x - min_box(A x) + margin`` (positive on the box, so carried exactly by ReLUs as well).

Its size follows the free neurons and the outputs, not the network: a CNN leaf with thousands of
stable neurons becomes a chain of a few dozen. Invariant: for every input in the box at which every
fixed phase holds, ``reduced(x) == network(x)`` (up to float64 rounding); elsewhere it may differ, so
an ``unsat`` of the reduced query refutes exactly the leaf's region, and a ``sat`` is confirmed on
the original network as always.
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain


def _express(chain: ReluChain, layer: int, rows: np.ndarray, masks, free) -> tuple[np.ndarray, dict, np.ndarray]:
    """``rows @ z_layer`` (``layer`` indexes the affine maps; the last is the output) as
    ``A x + sum_j C[j] h_free_j + c`` on the region where the phases hold."""
    coef = np.asarray(rows, dtype=np.float64)
    const = np.zeros(coef.shape[0])
    if coef.shape[0] == 0:  # no free neuron in this layer
        return np.zeros((0, lops.shape(chain.weights[0])[1])), {j: np.zeros((0, free[j].size)) for j in range(layer)}, const
    parts = {}
    for k in range(layer, -1, -1):
        const += coef @ np.asarray(chain.biases[k], dtype=np.float64)
        coef = np.asarray(lops.backward(chain.weights[k], coef), dtype=np.float64)  # over h_{k-1} (or x)
        if k == 0:
            break
        parts[k - 1] = coef[:, free[k - 1]]
        coef = coef * masks[k - 1][None, :]  # only the active neurons pass linearly
    return coef, parts, const


def reduced_relus(chain: ReluChain, phases: np.ndarray) -> int:
    """The number of ReLUs :func:`reduced_chain` would have (free ones and carried values), without
    building it."""
    sizes = chain.layer_sizes
    cuts = np.cumsum([0, *sizes])
    free = [int(np.sum(np.asarray(phases[cuts[k] : cuts[k + 1]]) == -1)) for k in range(len(sizes))]
    carried_rows = free[1:] + [chain.output_size]  # the input directions of layers 1.. and the output
    return sum(free[k] + sum(free[:k]) + sum(carried_rows[k:]) for k in range(len(sizes)))


def tableau_entries(chain: ReluChain) -> int:
    """About how many entries a dense Reluplex tableau of ``chain`` holds (equations x variables)."""
    relus, n, m = chain.num_relus, chain.input_size, chain.output_size
    return (relus + m) * (n + 2 * relus + m)


def reduced_chain(chain: ReluChain, lower: np.ndarray, upper: np.ndarray, phases: np.ndarray) -> ReluChain:
    """The chain reduced to the free ReLUs (``phases`` per ReLU in chain order: 1 active, 0 inactive,
    -1 free) over the input box ``[lower, upper]`` (see the module docstring)."""
    sizes = chain.layer_sizes
    hidden = len(sizes)
    cuts = np.cumsum([0, *sizes])
    phase = [np.asarray(phases[cuts[k] : cuts[k + 1]]) for k in range(hidden)]
    masks = [(p == 1).astype(np.float64) for p in phase]
    free = [np.flatnonzero(p == -1) for p in phase]
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    m = chain.output_size
    # every free neuron's pre-activation and every output, over x and the free outputs of earlier layers
    forms = []
    for k in range(hidden + 1):
        count = free[k].size if k < hidden else m
        rows = np.zeros((count, lops.shape(chain.weights[k])[0]))
        rows[np.arange(count), free[k] if k < hidden else np.arange(m)] = 1.0
        forms.append(_express(chain, k, rows, masks, free))
    # the input directions of layers 1.. and the output, carried as positive p = A x - low + margin
    lows, margins = [], []
    for a, _, _ in forms:
        low = np.minimum(a * lower, a * upper).sum(axis=1)
        lows.append(low)
        margins.append(1e-6 * (1.0 + np.abs(low) + np.abs(a) @ np.maximum(np.abs(lower), np.abs(upper))))
    if hidden == 0:
        a, _, c = forms[0]
        return ReluChain((a,), (c,))
    carried = list(range(1, hidden + 1))  # layers whose input part is carried as p
    weights, biases = [], []
    # layer k's outputs (k < hidden): [free_k, h of free_0..free_{k-1}, p of the layers after k]
    for k in range(hidden + 1):
        a, parts, c = forms[k]
        later = [j for j in carried if j > k]
        if k == 0:
            col, n_in = None, lops.shape(chain.weights[0])[1]
        else:
            col, n_in = _input_columns(k, free, forms, carried)
        blocks, bias = [], []
        # this layer's free neurons (or the outputs at k == hidden)
        if k == 0:
            own = a.copy()
        else:
            own = np.zeros((a.shape[0], n_in))
            for j, cj in parts.items():
                own[:, col["h", j]] += cj
            own[:, col["p", k]] += np.eye(a.shape[0])
            c = c + lows[k] - margins[k]
        blocks.append(own)
        bias.append(c)
        if k < hidden:
            # carried free outputs h_0..h_k-1 (identity), then p of later layers
            for j in range(k):
                block = np.zeros((free[j].size, n_in))
                block[np.arange(free[j].size), col["h", j]] = 1.0
                blocks.append(block)
                bias.append(np.zeros(free[j].size))
            for j in later:
                aj = forms[j][0]
                if k == 0:
                    block = aj.copy()
                    bias.append(-lows[j] + margins[j])
                else:
                    block = np.zeros((aj.shape[0], n_in))
                    block[np.arange(aj.shape[0]), col["p", j]] = 1.0
                    bias.append(np.zeros(aj.shape[0]))
                blocks.append(block)
        weights.append(np.vstack(blocks))
        biases.append(np.concatenate(bias))
    return ReluChain(tuple(weights), tuple(biases))


def _input_columns(k: int, free, forms, carried) -> tuple[dict, int]:
    """Column indices of layer ``k``'s inputs (``k >= 1``) and their number: ``("h", j)`` the free
    outputs of layer ``j`` (``j = k - 1`` first, as the previous layer's own neurons, then
    ``0 .. k - 2``), ``("p", j)`` the carried input directions of layers ``j >= k``."""
    cols, start = {}, 0
    order = [k - 1, *range(k - 1)]
    for j in order:
        cols["h", j] = np.arange(start, start + free[j].size)
        start += free[j].size
    for j in carried:
        if j >= k:
            rows = forms[j][0].shape[0]
            cols["p", j] = np.arange(start, start + rows)
            start += rows
    return cols, start
