"""The Query: the one boundary between properties and the solver.

A query asks for a **counterexample**. Its variables are

* ``v`` -- the *input variables*: the inputs of every network copy, concatenated,
  followed by ``num_auxiliary`` auxiliary variables (e.g. the ``t_i >= |x_i - x0_i|`` of
  an L1 ball), ``num_inputs`` in all;
* ``y`` -- the *output variables*: ``y = concat(N_k(v[offset_k : offset_k + n_k]))`` over
  the network copies ``k`` (``offset_k`` is the sum of the sizes of earlier copies).

It is ``sat`` iff there is ``v`` with

    lower <= v <= upper,   input_constraints.holds(v),   and for some disjunct d:
    d.lower <= v <= d.upper  and  d.constraints.holds(v, y)

and ``unsat`` iff no such ``v`` exists. A property is *violated* exactly when its
query is ``sat``; the solver never learns which property a query came from.

All constraints are non-strict linear inequalities ``A @ [v; y] <= rhs``. Bounds on
every input variable are finite (the solver's simplex needs them) and at most
:data:`LARGEST_INPUT` in magnitude; a query with an unbounded, inverted, NaN or larger bound is
refused at construction with :class:`QueryError`.

A network imported without its final Softmax (:attr:`~reluverify.network.Network.final_softmax`)
computes the file's logits; a query over it is accepted only when every row that reads its outputs
compares two of them, ``a * (y_i - y_j) <= 0``, which means the same on the logits as on the file's
outputs (Softmax and LogSoftmax keep the order of the scores). Any other row is refused with
:func:`~reluverify.network.softmax_refusal`, so no question about the file is answered on its logits
unless the answer is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reluverify.errors import QueryError
from reluverify.network import Network, ReluChain, softmax_refusal

LARGEST_INPUT = float(np.finfo(np.float32).max)
"""The largest magnitude of an input bound (about 3.4e38, the largest float32): ONNX networks take
float32 inputs, so no input lies beyond it (and onnxruntime could not confirm a counterexample there),
and bounds within it keep the float64 bound arithmetic of the solver far from overflow (an infinite
or NaN bound there would no longer be a sound bound)."""
BEYOND_FLOAT32 = f"beyond {LARGEST_INPUT:.3g} (the largest float32, the type of network inputs)"
"""How an error message says that a number is larger than :data:`LARGEST_INPUT`."""


@dataclass(frozen=True, eq=False)
class LinearConstraints:
    """``matrix @ [v; y] <= rhs``, one row per constraint; ``names`` label rows for reports."""

    matrix: np.ndarray  # (rows, num_inputs + num_outputs)
    rhs: np.ndarray  # (rows,)
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        r = np.asarray(self.rhs, dtype=np.float64).reshape(-1)
        if m.ndim != 2 or m.shape[0] != r.shape[0]:
            raise QueryError(f"constraint matrix of shape {m.shape} does not match {r.shape[0]} right-hand sides")
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(r))):
            raise QueryError("a linear constraint has a NaN or infinite coefficient")
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "rhs", r)
        if self.names and len(self.names) != r.shape[0]:
            raise QueryError("constraint names do not match the rows")

    @property
    def num_rows(self) -> int:
        return int(self.rhs.shape[0])

    @staticmethod
    def empty(width: int) -> "LinearConstraints":
        return LinearConstraints(np.zeros((0, width)), np.zeros(0))

    def residuals(self, point: np.ndarray) -> np.ndarray:
        """``matrix @ point - rhs``: a row holds when its residual is <= 0 (batched over leading axes)."""
        return np.asarray(point) @ self.matrix.T - self.rhs

    def holds(self, point: np.ndarray, tolerance: float = 0.0) -> bool | np.ndarray:
        res = self.residuals(point)
        return np.all(res <= tolerance, axis=-1)

    def describe(self, variable_names: list[str]) -> list[str]:
        lines = []
        for i in range(self.num_rows):
            terms = []
            for j in np.flatnonzero(self.matrix[i]):
                c = self.matrix[i, j]
                name = variable_names[j]
                if c == 1:
                    terms.append(f"+ {name}")
                elif c == -1:
                    terms.append(f"- {name}")
                else:
                    terms.append(f"{'+' if c > 0 else '-'} {abs(c):g}*{name}")
            text = " ".join(terms).lstrip("+ ") or "0"
            lines.append(f"{text} <= {self.rhs[i]:g}")
        return lines


@dataclass(frozen=True, eq=False)
class Disjunct:
    """One conjunction of the counterexample condition: a box (within the query's) and linear rows."""

    lower: np.ndarray
    upper: np.ndarray
    constraints: LinearConstraints
    label: str = ""

    def is_empty_box(self) -> bool:
        return bool(np.any(self.lower > self.upper))


@dataclass(frozen=True, eq=False)
class Query:
    """A counterexample search; see the module docstring for the exact meaning."""

    networks: tuple[Network, ...]
    lower: np.ndarray
    upper: np.ndarray
    disjuncts: tuple[Disjunct, ...]
    input_constraints: LinearConstraints | None = None
    num_auxiliary: int = 0
    description: str = ""
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.networks:
            raise QueryError("a query needs at least one network")
        lower = np.asarray(self.lower, dtype=np.float64).reshape(-1)
        upper = np.asarray(self.upper, dtype=np.float64).reshape(-1)
        n = self.num_network_inputs + self.num_auxiliary
        if lower.shape != (n,) or upper.shape != (n,):
            raise QueryError(
                f"input bounds have {lower.shape[0]} and {upper.shape[0]} entries, the query has {n} input variables"
            )
        _check_bounds(lower, upper, "input")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        width = n + self.num_outputs
        if self.input_constraints is None:
            object.__setattr__(self, "input_constraints", LinearConstraints.empty(n))
        if self.input_constraints.matrix.shape[1] != n:
            raise QueryError(f"input constraints have {self.input_constraints.matrix.shape[1]} columns, expected {n}")
        if not self.disjuncts:
            raise QueryError("a query needs at least one disjunct (an empty disjunction is never satisfied)")
        fixed = []
        for k, d in enumerate(self.disjuncts):
            dl = np.asarray(d.lower, dtype=np.float64).reshape(-1)
            du = np.asarray(d.upper, dtype=np.float64).reshape(-1)
            if dl.shape != (n,) or du.shape != (n,):
                raise QueryError(f"disjunct {k}: bounds have {dl.shape[0]} and {du.shape[0]} entries, expected {n}")
            if np.any(np.isnan(dl)) or np.any(np.isnan(du)):
                raise QueryError(f"disjunct {k}: a bound is NaN")
            dl, du = np.maximum(dl, lower), np.minimum(du, upper)
            if d.constraints.matrix.shape[1] != width:
                raise QueryError(
                    f"disjunct {k}: constraints have {d.constraints.matrix.shape[1]} columns, expected {width}"
                )
            fixed.append(Disjunct(dl, du, d.constraints, d.label or f"disjunct {k}"))
        object.__setattr__(self, "disjuncts", tuple(fixed))
        _check_final_softmax(self.networks, self.disjuncts, n)

    # --------------------------------------------------------------- sizes
    @property
    def input_sizes(self) -> tuple[int, ...]:
        return tuple(net.input_size for net in self.networks)

    @property
    def output_sizes(self) -> tuple[int, ...]:
        return tuple(net.output_size for net in self.networks)

    @property
    def num_network_inputs(self) -> int:
        return sum(self.input_sizes)

    @property
    def num_inputs(self) -> int:
        return self.num_network_inputs + self.num_auxiliary

    @property
    def num_outputs(self) -> int:
        return sum(self.output_sizes)

    def variable_names(self) -> list[str]:
        names = [f"X_{i}" for i in range(self.num_network_inputs)]
        names += [f"T_{i}" for i in range(self.num_auxiliary)]
        names += [f"Y_{i}" for i in range(self.num_outputs)]
        return names

    # --------------------------------------------------------- evaluation
    def outputs(self, inputs: np.ndarray) -> np.ndarray:
        """``y`` for a batch of input-variable vectors (batch, num_inputs), by reluverify's IR."""
        v = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
        parts, off = [], 0
        for net in self.networks:
            parts.append(net.evaluate(v[:, off : off + net.input_size]))
            off += net.input_size
        y = np.concatenate(parts, axis=1)
        return y[0] if np.ndim(inputs) == 1 else y

    def relu_chain(self) -> ReluChain:
        """All network copies as one ReLU chain from the network inputs to ``y`` (block diagonal;
        structured weights such as convolutions stay structured)."""
        if "chain" not in self._cache:
            self._cache["chain"] = ReluChain.stack([net.relu_chain() for net in self.networks])
        return self._cache["chain"]

    def satisfied_disjuncts(self, inputs: np.ndarray, outputs: np.ndarray, tolerance: float = 0.0) -> list[int]:
        """Indices of the disjuncts that ``(inputs, outputs)`` satisfies (box included), within ``tolerance``."""
        v = np.asarray(inputs, dtype=np.float64)
        point = np.concatenate([v, np.asarray(outputs, dtype=np.float64)])
        hits = []
        for k, d in enumerate(self.disjuncts):
            if d.is_empty_box() or np.any(v < d.lower - tolerance) or np.any(v > d.upper + tolerance):
                continue
            if d.constraints.holds(point, tolerance):
                hits.append(k)
        return hits

    def in_region(self, inputs: np.ndarray, tolerance: float = 0.0) -> bool:
        v = np.asarray(inputs, dtype=np.float64)
        if np.any(v < self.lower - tolerance) or np.any(v > self.upper + tolerance):
            return False
        return bool(self.input_constraints.holds(v, tolerance))

    def with_disjuncts(self, disjuncts) -> "Query":
        return Query(
            self.networks,
            self.lower,
            self.upper,
            tuple(disjuncts),
            self.input_constraints,
            self.num_auxiliary,
            self.description,
        )


def _check_final_softmax(networks: tuple[Network, ...], disjuncts: tuple[Disjunct, ...], num_inputs: int) -> None:
    """Refuse a row over the outputs of a network without its final Softmax unless it compares two of
    that network's scores with right-hand side 0 (see the module docstring)."""
    start = num_inputs
    for net in networks:
        stop = start + net.output_size
        if net.final_softmax:
            for d in disjuncts:
                matrix, rhs = d.constraints.matrix, d.constraints.rhs
                for row in np.flatnonzero(np.any(matrix[:, start:stop] != 0, axis=1)):
                    used = np.flatnonzero(matrix[row])
                    pair = (used.size == 2 and start <= used[0] and used[1] < stop
                            and matrix[row, used[0]] == -matrix[row, used[1]] and rhs[row] == 0)
                    if not pair:
                        raise QueryError(softmax_refusal(net.final_softmax))
        start = stop


def _check_bounds(lower: np.ndarray, upper: np.ndarray, what: str) -> None:
    if np.any(np.isnan(lower)) or np.any(np.isnan(upper)):
        raise QueryError(f"an {what} bound is NaN")
    bad = np.flatnonzero(~np.isfinite(lower) | ~np.isfinite(upper))
    if bad.size:
        raise QueryError(f"{what} variable {bad[0]} is unbounded: every input needs a finite lower and upper bound")
    big = np.flatnonzero(np.maximum(np.abs(lower), np.abs(upper)) > LARGEST_INPUT)
    if big.size:
        i = big[0]
        value = lower[i] if abs(lower[i]) > LARGEST_INPUT else upper[i]
        raise QueryError(f"{what} variable {i} has the bound {value:g}, {BEYOND_FLOAT32}: give smaller bounds")
    inverted = np.flatnonzero(lower > upper)
    if inverted.size:
        i = inverted[0]
        raise QueryError(f"{what} variable {i} has inverted bounds: lower {lower[i]:g} > upper {upper[i]:g}")


def box_query(
    network: Network,
    lower: np.ndarray,
    upper: np.ndarray,
    output_rows: list[tuple[np.ndarray, float]] | list[list[tuple[np.ndarray, float]]],
    description: str = "",
) -> Query:
    """A one-network query on a box; ``output_rows`` is a DNF over ``y`` only.

    ``output_rows`` is a list of disjuncts, each a list of ``(c, d)`` meaning ``c @ y <= d``.
    """
    n, m = network.input_size, network.output_size
    disjuncts = []
    for k, conj in enumerate(output_rows):
        rows = np.zeros((len(conj), n + m))
        rhs = np.zeros(len(conj))
        for i, (c, d) in enumerate(conj):
            rows[i, n:] = c
            rhs[i] = d
        disjuncts.append(Disjunct(np.asarray(lower, float), np.asarray(upper, float), LinearConstraints(rows, rhs), f"disjunct {k}"))
    return Query((network,), np.asarray(lower, float), np.asarray(upper, float), tuple(disjuncts), description=description)
