"""The Reluplex encoding of a ReLU chain: its variables, its equations, and the tableau of the initial basis.

Variables: the query's input variables ``v``; for every ReLU its input ``b``, output ``f`` and
``a = f - b`` (Marabou's auxiliary: ``a >= 0`` always, so the active phase is the bound ``a <= 0``
and the inactive phase the bound ``f <= 0``: every case split is a set of bound changes); the
outputs ``y``; one slack ``s_r = row_r @ [v; y]`` per linear constraint; and ``one`` fixed to 1.
The equations ``E @ z = 0`` hold at every point of the network; the search
(:mod:`~reluverify.solver.reluplex`) only ever changes bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify import linear_ops
from reluverify.network import ReluChain


@dataclass(frozen=True)
class VariableLayout:
    """Indices of each variable group in the tableau (see the module docstring)."""

    num_v: int
    num_x: int
    num_relus: int
    num_y: int
    num_s: int

    @property
    def v(self) -> np.ndarray:
        return np.arange(self.num_v)

    @property
    def x(self) -> np.ndarray:
        return np.arange(self.num_x)

    @property
    def b(self) -> np.ndarray:
        return self.num_v + np.arange(self.num_relus)

    @property
    def f(self) -> np.ndarray:
        return self.num_v + self.num_relus + np.arange(self.num_relus)

    @property
    def a(self) -> np.ndarray:
        return self.num_v + 2 * self.num_relus + np.arange(self.num_relus)

    @property
    def y(self) -> np.ndarray:
        return self.num_v + 3 * self.num_relus + np.arange(self.num_y)

    @property
    def s(self) -> np.ndarray:
        return self.num_v + 3 * self.num_relus + self.num_y + np.arange(self.num_s)

    @property
    def one(self) -> int:
        return self.num_v + 3 * self.num_relus + self.num_y + self.num_s

    @property
    def size(self) -> int:
        return self.one + 1


def build_equations(chain: ReluChain, layout: VariableLayout, rows: np.ndarray) -> np.ndarray:
    """``E @ z = 0`` for the chain, the auxiliaries ``a = f - b`` and the row slacks."""
    n_eq = 2 * layout.num_relus + layout.num_y + layout.num_s
    e = np.zeros((n_eq, layout.size))
    b_idx, f_idx, a_idx = layout.b, layout.f, layout.a
    one = layout.one
    row = 0
    offset = 0  # offset of the current layer inside the relu arrays
    prev = layout.x  # variables feeding the current affine layer
    for w, bias in zip(chain.weights[:-1], chain.biases[:-1]):
        w = linear_ops.dense(w)
        size = w.shape[0]
        targets = b_idx[offset : offset + size]
        block = np.arange(row, row + size)
        e[block, targets] = 1.0
        e[np.ix_(block, prev)] = -w
        e[block, one] = -bias
        row += size
        prev = f_idx[offset : offset + size]
        offset += size
    # a = f - b  ->  a - f + b = 0
    block = np.arange(row, row + layout.num_relus)
    e[block, a_idx] = 1.0
    e[block, f_idx] = -1.0
    e[block, b_idx] = 1.0
    row += layout.num_relus
    # outputs
    block = np.arange(row, row + layout.num_y)
    e[block, layout.y] = 1.0
    e[np.ix_(block, prev)] = -linear_ops.dense(chain.weights[-1])
    e[block, one] = -chain.biases[-1]
    row += layout.num_y
    # slacks: s - rows @ [v; y] = 0
    if layout.num_s:
        block = np.arange(row, row + layout.num_s)
        e[block, layout.s] = 1.0
        e[np.ix_(block, layout.v)] = -rows[:, : layout.num_v]
        e[np.ix_(block, layout.y)] = -rows[:, layout.num_v :]
    return e


def initial_tableau(chain: ReluChain, layout: VariableLayout, rows: np.ndarray) -> np.ndarray:
    """``T`` for the initial basis (every ``b``, ``a``, ``y``, ``s`` basic), written down directly.

    ``b_l = W_l f_{l-1} + c_l``, ``a_l = f_l - b_l``, ``y = W_L f_{L-1} + c_L`` and
    ``s = A_v v + A_y y``, with ``f_0 = x``; equal to ``-solve(E_B, E)`` but without the solve.
    """
    lay = layout
    t = np.zeros((2 * lay.num_relus + lay.num_y + lay.num_s, lay.size), order="F")
    b_idx, f_idx = lay.b, lay.f
    row = 0
    offset = 0
    prev = lay.x
    a_row0 = lay.num_relus
    for w, bias in zip(chain.weights[:-1], chain.biases[:-1]):
        w = linear_ops.dense(w)
        size = w.shape[0]
        block = np.arange(row, row + size)
        t[np.ix_(block, prev)] = w
        t[block, lay.one] = bias
        a_block = a_row0 + block
        t[a_block, f_idx[offset : offset + size]] = 1.0
        t[np.ix_(a_block, prev)] -= w
        t[a_block, lay.one] = -bias
        row += size
        prev = f_idx[offset : offset + size]
        offset += size
    y_rows = np.arange(2 * lay.num_relus, 2 * lay.num_relus + lay.num_y)
    last = linear_ops.dense(chain.weights[-1])
    t[np.ix_(y_rows, prev)] = last
    t[y_rows, lay.one] = chain.biases[-1]
    if lay.num_s:
        s_rows = np.arange(2 * lay.num_relus + lay.num_y, t.shape[0])
        a_v, a_y = rows[:, : lay.num_v], rows[:, lay.num_v :]
        t[np.ix_(s_rows, lay.v)] = a_v
        t[np.ix_(s_rows, prev)] += a_y @ last
        t[s_rows, lay.one] = a_y @ chain.biases[-1]
    return t
