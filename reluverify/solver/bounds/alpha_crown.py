"""Linear bounds with optimised relaxations: alpha-CROWN slopes and beta-CROWN split multipliers.

The optimised bounds of the branch-and-bound strategies. Everything is batched: ``B``
sub-problems (boxes, or one box with different ReLU splits) and ``S`` rows per sub-problem.

**Region.** The input variables ``v`` (the chain's inputs ``x = v[:n_x]``, then auxiliaries) lie
in a box per sub-problem and satisfy shared rows ``A v <= b``. A *relaxation* adds, per hidden
layer ``j``, sound bounds ``lower_j <= z_j <= upper_j`` on the pre-activations over the region
and optional *splits* ``s_j`` in {+1 active: ``z >= 0``, -1 inactive: ``z <= 0``, 0 free}. The
bounds of a split neuron are already clamped to its phase, and they hold on the *constrained
region* ``F`` = region with every split constraint.

**Backward pass** (:func:`backward`): rows ``mu`` over ``z_s`` (the outputs, or a hidden layer
for intermediate bounds) are substituted down to ``v``. An unstable ReLU ``h = relu(z)`` is
replaced by ``alpha z`` (``0 <= alpha <= 1``) where its coefficient is non-negative and by the
chord ``u (z - l) / (u - l)`` where it is negative; every hidden neuron adds
``beta_l (l - z) + beta_u (z - u)`` (``beta >= 0``: multipliers of its bounds, which for a split
neuron include the split ``z >= 0`` or ``z <= 0``), and the input rows add ``gamma (A v - b)``
(``gamma >= 0``). For *every* value of ``alpha``, ``beta`` and ``gamma`` in their ranges, the result
``lam @ v + c`` is at most ``mu @ z_s + const`` at every point of ``F`` (weak duality: the added
terms are non-positive on ``F``), so its minimum over the box is a sound lower bound. That is the
invariant that makes optimising these parameters safe: a bad optimiser gives a loose bound, never
a wrong one.

The multipliers of *all* bounds, not only of the splits (beta-CROWN's), matter: a single pass
uses one slope per neuron, while the bounds ``l <= z <= u`` were each proven with slopes of their
own; with them the optimum is the LP over the triangle relaxation with these bounds (the dual
variables of the LP are exactly alpha, both betas and gamma), so an empty sub-problem shows as a
bound that grows without limit.

**Gradients** (:func:`gradients`): with the sign pattern of a pass held fixed, the bound is
linear in each parameter; its gradient is a forward pass of the box vertex that minimises the
bound through the *selected* relaxation (``z_hat``), which costs the same as the backward pass.

**Optimisation** (:func:`optimise`): projected Adam ascent on the bound, keeping the best
parameters seen per row (the bound never gets worse than where it started).

The ReLU lines themselves (chord, starting slopes) come from
:mod:`~reluverify.solver.bounds.relaxation`. The passes, their gradients and the ascent stay in one
module on purpose: they are one algorithm over one parameter layout (a change to what a pass records
is a change to its gradient and to the ascent that reads both), and its users reach all of it
through this one namespace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain
from reluverify.solver.bounds.relaxation import area_slope, chord


# ---------------------------------------------------------------- regions and relaxations
@dataclass(frozen=True)
class Region:
    """The input region: ``lower <= v <= upper`` (B, n_v) and ``rows @ v <= rhs`` (shared by the batch)."""

    lower: np.ndarray
    upper: np.ndarray
    rows: np.ndarray | None = None  # (r, n_v)
    rhs: np.ndarray | None = None  # (r,)

    @property
    def num_rows(self) -> int:
        return 0 if self.rows is None else int(self.rows.shape[0])

    def take(self, index: np.ndarray) -> "Region":
        return replace(self, lower=self.lower[index], upper=self.upper[index])


@dataclass
class Relaxation:
    """Pre-activation bounds per hidden layer (B, n_j), valid on the constrained region, and splits.

    ``split[j]`` (int8, B x n_j) is +1 for a neuron split active, -1 inactive, 0 free; the bounds
    of a split neuron are clamped to its phase (``lower >= 0`` or ``upper <= 0``).
    """

    lower: list[np.ndarray]
    upper: list[np.ndarray]
    split: list[np.ndarray] = field(default_factory=list)
    size: int = -1
    """The batch size (needed only for networks without hidden layers; read from the bounds otherwise)."""

    def __post_init__(self) -> None:
        if not self.split:
            self.split = [np.zeros(lo.shape, dtype=np.int8) for lo in self.lower]
        if self.lower:
            self.size = int(self.lower[0].shape[0])
        elif self.size < 0:
            raise ValueError("a relaxation without hidden layers needs its batch size")

    @property
    def batch(self) -> int:
        return self.size

    def take(self, index: np.ndarray) -> "Relaxation":
        index = np.asarray(index)
        size = int(index.sum()) if index.dtype == bool else int(index.size)
        return Relaxation(
            [a[index] for a in self.lower], [a[index] for a in self.upper], [a[index] for a in self.split], size
        )

    def unstable(self) -> list[np.ndarray]:
        return [(lo < 0) & (hi > 0) for lo, hi in zip(self.lower, self.upper)]

    def unstable_counts(self) -> np.ndarray:
        total = np.zeros(self.batch, dtype=np.int64)
        for mask in self.unstable():
            total += mask.sum(axis=1)
        return total

    def infeasible(self, tolerance: float = 1e-9) -> np.ndarray:
        """Sub-problems in which some bound is inverted by more than ``tolerance`` (relative to the
        bounds' size): their constrained region is empty. Smaller crossings are round-off (a
        neuron whose value is a single point, e.g. on constant inputs) and prove nothing."""
        bad = np.zeros(self.batch, dtype=bool)
        for lo, hi in zip(self.lower, self.upper):
            bad |= np.any(lo > hi + tolerance * (1.0 + np.abs(lo) + np.abs(hi)), axis=1)
        return bad


def ordered(lower: np.ndarray, upper: np.ndarray, tolerance: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of a neuron whose value is (nearly) one point may cross by round-off: such a pair is
    returned in order (both computed values kept, so the interval still holds the point); a
    larger crossing, an empty region, is left for :meth:`Relaxation.infeasible` to see."""
    crossed = (lower > upper) & (lower - upper <= tolerance * (1.0 + np.abs(lower) + np.abs(upper)))
    return np.where(crossed, upper, lower), np.where(crossed, lower, upper)


# ------------------------------------------------------------------------------ passes
@dataclass
class Pass:
    """One backward pass: the bound per row and what gradients and branching need."""

    value: np.ndarray  # (B, S): lower bound of mu @ z_start + const over the constrained region
    lam: np.ndarray  # (B, S, n_v): the final linear function of v
    const: np.ndarray  # (B, S)
    vertex: np.ndarray  # (B, S, n_v): the box point minimising lam @ v
    start: int
    nu: list[np.ndarray]  # per hidden layer j < start: coefficient on h_j (B, S, n_j)
    slope: list[np.ndarray]  # selected slope of h_j in z_j (B, S, n_j)
    intercept: list[np.ndarray]  # selected intercept (chords of negative coefficients)
    alpha_used: list[np.ndarray]  # boolean: where alpha was the slope (unstable, nu >= 0, free)
    const_at: list[np.ndarray]  # constant accumulated down to layer j's relaxation included (B, S)
    mu_at: list[np.ndarray]  # coefficient on z_j after relaxation and bound multipliers (B, S, n_j)
    input_coef: np.ndarray | None = None  # the objective's own coefficients on v (added at the end)


def _select(mask: np.ndarray, a, b) -> np.ndarray:
    """``np.where(mask, a, b)``, exactly, for finite ``a`` and ``b`` (one of the two products is an exact
    zero, the other the value itself), in the arrays' float type; twice as fast as ``np.where`` on the
    batched float32 arrays of a pass (on float64 ones ``np.where`` is the faster, and is used)."""
    if np.result_type(a, b) == np.float64:
        return np.where(mask, a, b)
    out = a * mask
    out += b * ~mask
    return out


def _apply_t(w, coef: np.ndarray) -> np.ndarray:
    """``coef @ w`` for coefficients (B, S, n_out) -> (B, S, n_in) (w dense or a structured operator;
    columns of ``coef`` that are zero in every row, as in the one-hot rows of intermediate bounds or
    at inactive ReLUs, are skipped: see :data:`linear_ops.SKIP_ZERO_COLUMNS`)."""
    b, s, n = coef.shape
    out = lops.backward(w, coef.reshape(b * s, n)).astype(coef.dtype, copy=False)
    return out.reshape(b, s, lops.shape(w)[1])


def _apply(w, value: np.ndarray) -> np.ndarray:
    """``w @ value`` for values (B, S, n_in) -> (B, S, n_out) (w dense or a structured operator;
    inputs zero in every row are skipped)."""
    b, s, n = value.shape
    out = lops.forward(w, value.reshape(b * s, n)).astype(value.dtype, copy=False)
    return out.reshape(b, s, lops.shape(w)[0])


_CAST: dict[tuple[int, str], tuple] = {}


def _weights(chain: ReluChain, dtype) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The chain's weights and biases in ``dtype`` (float32 copies are made once per chain)."""
    if np.dtype(dtype) == np.float64:
        return chain.weights, chain.biases
    key = (id(chain), np.dtype(dtype).str)
    cached = _CAST.get(key)
    if cached is None or cached[0] is not chain:
        if len(_CAST) > 8:
            _CAST.clear()
        # structured operators compute in float64 (their results are cast back to ``dtype``)
        weights = tuple(w.astype(dtype) if lops.is_dense(w) else w for w in chain.weights)
        cached = (chain, weights, tuple(b.astype(dtype) for b in chain.biases))
        _CAST[key] = cached
    return cached[1], cached[2]


@dataclass
class Terms:
    """What a relaxation contributes to every pass, computed once per relaxation (B, 1, n_j per layer).

    ``upper_slope``/``upper_icpt``: the line a neuron takes where its coefficient is negative (1 and 0
    if active, 0 and 0 if inactive, the chord if unstable); ``unstable``: where alpha is free.
    """

    dtype: np.dtype
    lower: list[np.ndarray]
    upper: list[np.ndarray]
    unstable: list[np.ndarray]
    upper_slope: list[np.ndarray]
    upper_icpt: list[np.ndarray]
    box_lower: np.ndarray  # (B, 1, n_v)
    box_upper: np.ndarray
    signed_bounds: list[np.ndarray]  # (B, 2 n_j): per neuron ``l`` and ``-u``, the constants of its two bound multipliers


def take_terms(terms: Terms, index: np.ndarray) -> Terms:
    """The terms of sub-problems ``index`` of a batch."""
    pick = lambda arrays: [a[index] for a in arrays]  # noqa: E731
    return Terms(
        terms.dtype, pick(terms.lower), pick(terms.upper), pick(terms.unstable), pick(terms.upper_slope),
        pick(terms.upper_icpt), terms.box_lower[index], terms.box_upper[index], pick(terms.signed_bounds),
    )


def layer_terms(relaxation: Relaxation, region: Region, dtype=np.float64) -> Terms:
    lowers, uppers, unstables, slopes, icpts = [], [], [], [], []
    for lo, hi in zip(relaxation.lower, relaxation.upper):
        lo, hi = lo[:, None, :], hi[:, None, :]
        slope, intercept = chord(lo, hi)
        lowers.append(lo.astype(dtype))
        uppers.append(hi.astype(dtype))
        unstables.append((lo < 0) & (hi > 0))
        slopes.append(slope.astype(dtype))
        icpts.append(intercept.astype(dtype))
    signed = [np.stack([lo[:, 0], -hi[:, 0]], axis=-1).reshape(lo.shape[0], -1) for lo, hi in zip(lowers, uppers)]
    return Terms(
        np.dtype(dtype), lowers, uppers, unstables, slopes, icpts,
        region.lower[:, None, :].astype(dtype), region.upper[:, None, :].astype(dtype), signed,
    )


def backward(
    chain: ReluChain,
    region: Region,
    relaxation: Relaxation,
    mu: np.ndarray,
    const: np.ndarray,
    start: int | None = None,
    input_coef: np.ndarray | None = None,
    alpha: list[np.ndarray] | None = None,
    beta: list[np.ndarray] | None = None,
    gamma: np.ndarray | None = None,
    record: bool = True,
    terms: Terms | None = None,
) -> Pass:
    """Lower bounds of ``mu @ z_start + input_coef @ v + const`` over the constrained region.

    ``start`` is the index of the affine layer whose output ``mu`` (B, S, n) weighs (default: the
    last, i.e. the outputs ``y``); ``alpha[j]`` (broadcastable to (B, S, n_j)) are the slopes and
    ``beta[j]`` (broadcastable to (B, S, n_j, 2)) the multipliers of ``z >= l`` and ``z <= u`` of
    hidden layer ``j < start`` (``None``: heuristic slopes, no multipliers); ``gamma`` (B, S, r)
    weighs the region's rows. Sound for any parameters in range (see the module docstring):
    alpha is clipped to [0, 1] and the multipliers at 0; stable neurons take their exact lines.
    ``terms`` (from :func:`layer_terms`) saves recomputing the relaxation's lines and sets the
    float type of the pass (float64 by default).
    """
    terms = terms if terms is not None else layer_terms(relaxation, region)
    dtype = terms.dtype
    weights, biases = _weights(chain, dtype)
    start = len(weights) - 1 if start is None else start
    mu = np.asarray(mu, dtype=dtype)
    batch, rows = mu.shape[:2]
    const = np.array(np.broadcast_to(const, (batch, rows)), dtype=dtype)
    record_nu, record_slope, record_icpt, record_alpha, record_const, record_mu = [], [], [], [], [], []
    coef = mu
    for k in range(start, -1, -1):
        const = const + coef @ biases[k]
        nu = _apply_t(weights[k], coef)  # coefficient on h_{k-1} (or on x when k == 0)
        if k == 0:
            break
        j = k - 1
        positive = nu >= 0
        if alpha is None or alpha[j] is None:
            slope = _select(positive, area_slope(terms.lower[j], terms.upper[j]).astype(dtype), terms.upper_slope[j])
        else:  # alpha is free only on unstable neurons; stable ones take their exact line
            slope = _select(terms.unstable[j] & positive, np.clip(alpha[j], 0.0, 1.0), terms.upper_slope[j])
        icpt = terms.upper_icpt[j] * ~positive  # the chord's intercept counts where nu < 0
        const = const + np.einsum("bsn,bsn->bs", nu, icpt)
        coef = nu * slope
        if beta is not None and beta[j] is not None:
            b = np.maximum(beta[j], 0.0)  # (..., n, 2): multipliers of z >= l and z <= u
            b = np.broadcast_to(b, nu.shape + (2,))
            coef += b[..., 1] - b[..., 0]
            const = const + (b.reshape(batch, rows, -1) @ terms.signed_bounds[j][:, :, None])[..., 0]
        if record:
            record_nu.append(nu)
            record_slope.append(slope)
            record_icpt.append(icpt)
            record_alpha.append(terms.unstable[j] & positive)
            record_const.append(const)
            record_mu.append(coef)
    n_x = chain.input_size
    n_v = region.lower.shape[1]
    if n_v == n_x and input_coef is None:
        lam = nu
    else:
        lam = np.zeros((batch, rows, n_v), dtype=dtype)
        lam[:, :, :n_x] = nu
        if input_coef is not None:
            lam = lam + input_coef
    if gamma is not None and region.num_rows:
        g = np.maximum(gamma, 0.0)
        lam = lam + g @ region.rows.astype(dtype)
        const = const - g @ region.rhs.astype(dtype)
    if dtype == np.float64:  # exactly a corner of the box: the bound is exactly its minimum
        vertex = _select(lam > 0, terms.box_lower, terms.box_upper)
    else:  # an ascent's pass (its values only steer; the bound returned comes from a float64 pass):
        # the corner up to round-off, in half the time of the exact selection on 784 inputs
        vertex = np.multiply(terms.box_upper - terms.box_lower, lam <= 0)
        vertex += terms.box_lower
    value = np.einsum("bsn,bsn->bs", lam, vertex) + const
    # recorded lists are in order start-1 ... 0; store them by layer index
    return Pass(
        value, lam, const, vertex, start,
        record_nu[::-1], record_slope[::-1], record_icpt[::-1], record_alpha[::-1], record_const[::-1], record_mu[::-1],
        input_coef,
    )


@dataclass
class Gradients:
    alpha: list[np.ndarray]  # per hidden layer j < start (B, S, n_j)
    beta: list[np.ndarray]
    gamma: np.ndarray | None  # (B, S, r)
    z_hat: np.ndarray | None  # (B, S, n_start): z_start through the selected relaxation at the vertex (None: not computed)
    z_layers: list[np.ndarray] = field(default_factory=list)  # z_hat of every hidden layer j < start


def gradients(
    chain: ReluChain, region: Region, relaxation: Relaxation, p: Pass, terms: Terms | None = None, top: bool = True,
    beta_layers: list[bool] | None = None,
) -> Gradients:
    """The gradient of ``p.value`` in alpha, beta and gamma (sign pattern of the pass held fixed).

    It is the forward pass of ``p.vertex`` through the relaxation the pass selected: with
    ``z_hat_j`` the relaxed pre-activation at the vertex, ``d value / d alpha_j = nu_j z_hat_j`` where
    alpha was used, ``d value / d beta_j = (l - z_hat_j, z_hat_j - u)`` and ``d value / d gamma = A v - b``.
    With ``top=False`` the pass's own layer is not reached (``z_hat`` is None): only an objective's
    row weights need it. With ``beta_layers``, the beta gradient of a layer marked False is None
    (its multipliers are not ascended).
    """
    terms = terms if terms is not None else layer_terms(relaxation, region)
    weights, biases = _weights(chain, terms.dtype)
    n_x = chain.input_size
    h = p.vertex[:, :, :n_x]
    g_alpha, g_beta, z_layers = [], [], []
    z = _apply(weights[0], h) + biases[0]
    for j in range(p.start):
        z_layers.append(z)
        g_alpha.append(p.nu[j] * z * p.alpha_used[j])
        if beta_layers is None or beta_layers[j]:
            gb = np.empty(z.shape + (2,), dtype=z.dtype)
            np.subtract(terms.lower[j], z, out=gb[..., 0])
            np.subtract(z, terms.upper[j], out=gb[..., 1])
            g_beta.append(gb)
        else:
            g_beta.append(None)
        if j + 1 == p.start and not top:
            z = None
            break
        h = p.slope[j] * z + p.intercept[j]
        z = _apply(weights[j + 1], h) + biases[j + 1]
    g_gamma = None
    if region.num_rows:
        g_gamma = p.vertex @ region.rows.T.astype(terms.dtype) - region.rhs.astype(terms.dtype)
    return Gradients(g_alpha, g_beta, g_gamma, z, z_layers)


# --------------------------------------------------------------------------- optimising
@dataclass
class Parameters:
    """Relaxation parameters per sub-problem and row: alpha (B, S, n_j) and beta (B, S, n_j, 2) per hidden
    layer (a layer's beta may be None: its multipliers are zero), gamma (B, S, r)."""

    alpha: list[np.ndarray]
    beta: list[np.ndarray] | None = None
    gamma: np.ndarray | None = None
    weights: np.ndarray | None = None
    """(B, S, R): the simplex weights that combine an :class:`Objective`'s rows (None: no objective)."""

    def take(self, index: np.ndarray) -> "Parameters":
        return Parameters(
            [a[index] for a in self.alpha],
            None if self.beta is None else [None if b is None else b[index] for b in self.beta],
            None if self.gamma is None else self.gamma[index],
            None if self.weights is None else self.weights[index],
        )

    def astype(self, dtype) -> "Parameters":
        """A copy in ``dtype`` (``self`` when it already is)."""
        if self.alpha and self.alpha[0].dtype == np.dtype(dtype):
            return self
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        return Parameters(
            [cast(a) for a in self.alpha],
            None if self.beta is None else [cast(b) for b in self.beta],
            cast(self.gamma),
            cast(self.weights),
        )

    def copy(self) -> "Parameters":
        return Parameters(
            [a.copy() for a in self.alpha],
            None if self.beta is None else [None if b is None else b.copy() for b in self.beta],
            None if self.gamma is None else self.gamma.copy(),
            None if self.weights is None else self.weights.copy(),
        )


@dataclass(frozen=True)
class Objective:
    """A conjunction ``out_rows @ y + in_rows @ v <= rhs`` (R rows) to refute on the region.

    It has no solution where some convex combination ``w @ (rows - rhs)`` (``w`` on the simplex)
    has a positive lower bound; :func:`optimise` ascends ``w`` with the relaxation parameters.
    With one row, ``w = 1``. The rows are shared by the batch (``out_rows`` (R, m), ``in_rows``
    (R, n_v), ``rhs`` (R,)) or given per sub-problem (``(B, R, m)``, ``(B, R, n_v)``, ``(B, R)``: a
    batch whose sub-problems refute different conjunctions, see :meth:`stacked`).
    """

    out_rows: np.ndarray
    in_rows: np.ndarray
    rhs: np.ndarray

    @property
    def per_batch(self) -> bool:
        return self.rhs.ndim == 2

    @property
    def num_rows(self) -> int:
        return int(self.rhs.shape[-1])

    @staticmethod
    def stacked(objectives: list["Objective"]) -> "Objective":
        """Several shared objectives as one per-batch objective of ``len(objectives)`` entries (entry
        ``t`` is ``objectives[t]``; pick a batch with :meth:`take`). Conjunctions with fewer rows
        repeat their last row (a conjunction with a row twice is the same conjunction)."""
        rows = max(o.num_rows for o in objectives)
        pad = lambda a: np.concatenate([a, np.repeat(a[-1:], rows - a.shape[0], axis=0)])  # noqa: E731
        return Objective(
            np.stack([pad(o.out_rows) for o in objectives]), np.stack([pad(o.in_rows) for o in objectives]),
            np.stack([pad(o.rhs) for o in objectives]),
        )

    def take(self, index: np.ndarray) -> "Objective":
        """The per-batch objective of entries ``index``."""
        return Objective(self.out_rows[index], self.in_rows[index], self.rhs[index])

    def combine(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``mu``, ``const`` and the input coefficients of the rows combined by ``weights`` (B, S, R)."""
        if self.per_batch:
            return weights @ self.out_rows, -(weights @ self.rhs[:, :, None])[..., 0], weights @ self.in_rows
        return weights @ self.out_rows, -(weights @ self.rhs), weights @ self.in_rows

    def weight_gradient(self, p: "Pass", z_hat: np.ndarray) -> np.ndarray:
        """d value / d weights (B, S, R): each row's value at the relaxed point (vertex, z_hat)."""
        if self.per_batch:
            return z_hat @ self.out_rows.transpose(0, 2, 1) + p.vertex @ self.in_rows.transpose(0, 2, 1) - self.rhs[:, None, :]
        return z_hat @ self.out_rows.T + p.vertex @ self.in_rows.T - self.rhs


def initial_parameters(relaxation: Relaxation, rows: int, layers: int, region: Region, with_beta: bool) -> Parameters:
    """Heuristic slopes, zero multipliers, for ``rows`` rows over hidden layers ``0..layers-1``."""
    alpha = [
        np.repeat(area_slope(relaxation.lower[j], relaxation.upper[j])[:, None, :], rows, axis=1)
        for j in range(layers)
    ]
    beta = [np.zeros(a.shape + (2,)) for a in alpha] if with_beta else None
    gamma = np.zeros((relaxation.batch, rows, region.num_rows)) if region.num_rows else None
    return Parameters(alpha, beta, gamma)


def uniform_weights(batch: int, rows: int, objective: Objective) -> np.ndarray:
    r = objective.num_rows
    return np.full((batch, rows, r), 1.0 / r)


@dataclass
class _Adam:
    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    step: int = 0
    m: list = field(default_factory=list)
    v: list = field(default_factory=list)

    def update(self, params: list[np.ndarray], grads: list[np.ndarray], lrs: list[float]) -> None:
        """Ascent: ``params += lr * m_hat / (sqrt(v_hat) + eps)`` in place."""
        if not self.m:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.step += 1
        c1 = 1.0 - self.beta1**self.step
        c2 = 1.0 - self.beta2**self.step
        for p, g, m, v, lr in zip(params, grads, self.m, self.v, lrs):
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            g = g * g  # a new array: the caller's gradient is not overwritten
            g *= 1.0 - self.beta2
            v += g
            # p += lr * (m / c1) / (sqrt(v / c2) + 1e-8), with one temporary
            np.sqrt(v, out=g)
            g *= 1.0 / c2**0.5  # a Python float: no float64 loop over float32 arrays
            g += 1e-8
            np.divide(m, g, out=g)
            g *= lr / c1
            p += g


@dataclass(frozen=True)
class OptimiseSettings:
    iterations: int = 20
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    lr_gamma: float = 0.05
    lr_weights: float = 0.5
    decay: float = 0.98
    dtype: type = np.float32
    """Float type of the ascent (the bound returned is always computed in float64)."""
    stop_above: float | None = 0.0
    """Stop early once every row's bound exceeds this (``None``: never)."""
    deadline: float | None = None
    """``time.monotonic()`` past which the ascent stops (what it has is returned, sound as always)."""
    keep_start: bool = True
    """Return, per row, the given parameters where the ascent ended below them (one more float64 pass);
    off where the caller keeps the better of the old and the new bound anyway (intermediate bounds,
    which are intersected with the ones they had)."""
    restrict: bool = False
    """Ascend over the neurons the batch can use only (:func:`restricted`: dense chains): the
    neurons inactive by their bounds in every sub-problem of the batch, and not split, are left out
    with their multipliers at zero. Same slopes, far smaller arrays where most neurons are inactive
    (MNIST 256x4 prop 9, 7 splits deep: 204 of 256 first-layer neurons in all of 6 sub-problems)."""


def bound(
    chain: ReluChain,
    region: Region,
    relaxation: Relaxation,
    objective: Objective | tuple,
    params: Parameters,
    start: int | None = None,
    terms: Terms | None = None,
) -> Pass:
    """One backward pass of ``objective`` (an :class:`Objective` combined by ``params.weights``, or
    a fixed ``(mu, const)`` pair) with the parameters ``params`` (float64 unless ``terms`` say otherwise)."""
    if isinstance(objective, Objective):
        mu, const, input_coef = objective.combine(params.weights)
        if terms is not None:
            input_coef = input_coef.astype(terms.dtype)
    else:
        (mu, const), input_coef = objective, None
    return backward(
        chain, region, relaxation, mu, const, start, input_coef, params.alpha, params.beta, params.gamma, terms=terms
    )


def optimise(
    chain: ReluChain,
    region: Region,
    relaxation: Relaxation,
    objective: Objective | tuple,
    params: Parameters,
    settings: OptimiseSettings,
    start: int | None = None,
) -> tuple[np.ndarray, Parameters, Pass]:
    """:func:`ascend`, over the neurons the batch can use where ``settings.restrict`` asks for it.

    The values are those of the restricted chain, which are those of the whole chain at the
    parameters returned (the removed neurons' multipliers are returned as zero; their slopes as
    given, unused by inactive neurons). The pass returned then has no per-layer arrays (they would
    cover the kept neurons only): its value, ``lam``, ``const`` and vertex are the whole chain's.
    """
    start = len(chain.weights) - 1 if start is None else start
    if not (settings.restrict and chain.is_dense and start > 0):
        return ascend(chain, region, relaxation, objective, params, settings, start)
    keep = live_neurons(relaxation, start)
    if sum(k.size for k in keep) == sum(lo.shape[1] for lo in relaxation.lower[:start]):
        return ascend(chain, region, relaxation, objective, params, settings, start)
    part_chain, part = restricted(chain, relaxation, keep, start)
    part_params = Parameters(  # np.take: C-ordered copies (fancy indexing may give other layouts)
        [np.take(a, k, axis=2) for a, k in zip(params.alpha, keep)],
        None if params.beta is None else [None if b is None else np.take(b, k, axis=2) for b, k in zip(params.beta, keep)],
        params.gamma, params.weights,
    )
    value, best, p = ascend(part_chain, region, part, objective, part_params, settings, start)
    alpha = [a.astype(c.dtype) for a, c in zip(params.alpha, best.alpha)]  # removed neurons: slopes as given
    for a, c, k in zip(alpha, best.alpha, keep):
        a[:, :, k] = c
    beta = None
    if params.beta is not None:  # removed neurons: multipliers zero
        beta = [None if b is None else np.zeros(b.shape, dtype=c.dtype) for b, c in zip(params.beta, best.beta)]
        for b, c, k in zip(beta, best.beta, keep):
            if b is None:
                continue
            b[:, :, k] = c
    whole = Pass(p.value, p.lam, p.const, p.vertex, p.start, [], [], [], [], [], [], p.input_coef)
    return value, Parameters(alpha, beta, best.gamma, best.weights), whole


def ascend(
    chain: ReluChain,
    region: Region,
    relaxation: Relaxation,
    objective: Objective | tuple,
    params: Parameters,
    settings: OptimiseSettings,
    start: int | None = None,
) -> tuple[np.ndarray, Parameters, Pass]:
    """Projected Adam ascent on the bound; returns the best value per row, its parameters and a pass at them.

    ``objective`` is an :class:`Objective` (its weights in ``params.weights`` are ascended too, by
    exponentiated gradient) or a fixed ``(mu, const)``. The ascent runs in ``settings.dtype``
    (float32: twice the speed; the parameters only steer the bound), and the values returned come
    from one float64 pass at the parameters returned, so every value returned is a sound bound
    (see the module docstring), never below the one the given parameters had (with ``settings.keep_start``).
    """
    start = len(chain.weights) - 1 if start is None else start
    mixing = isinstance(objective, Objective) and objective.num_rows > 1
    exact = layer_terms(relaxation, region, np.float64)
    fast = exact if np.dtype(settings.dtype) == np.float64 else layer_terms(relaxation, region, settings.dtype)
    params = params.astype(settings.dtype)
    if settings.iterations == 0:
        p = bound(chain, region, relaxation, objective, params, start, exact)
        return p.value, params, p
    initial = params.copy() if settings.keep_start else None
    if not isinstance(objective, Objective):
        objective = (np.asarray(objective[0], dtype=settings.dtype), np.asarray(objective[1], dtype=settings.dtype))
    p = bound(chain, region, relaxation, objective, params, start, fast)
    best = p.value.copy()
    best_params = params.copy()
    adam = _Adam(settings.lr_alpha)
    lr_scale = 1.0
    stop = None if settings.stop_above is None else settings.stop_above + 1e-5 * (1.0 + np.abs(settings.stop_above))
    beta_layers = None if params.beta is None else [b is not None for b in params.beta]
    for _ in range(settings.iterations):
        if stop is not None and np.all(best > stop + 1e-5 * np.abs(best)):
            break
        if settings.deadline is not None and time.monotonic() > settings.deadline:
            break
        g = gradients(chain, region, relaxation, p, fast, top=mixing, beta_layers=beta_layers)
        tensors, grads, lrs = list(params.alpha), list(g.alpha[: len(params.alpha)]), [settings.lr_alpha * lr_scale] * len(params.alpha)
        if params.beta is not None:  # layers whose multipliers are fixed at zero (None) are not ascended
            kept = [j for j, b in enumerate(params.beta) if b is not None]
            tensors += [params.beta[j] for j in kept]
            grads += [g.beta[j] for j in kept]
            lrs += [settings.lr_beta * lr_scale] * len(kept)
        if params.gamma is not None:
            tensors.append(params.gamma)
            grads.append(g.gamma)
            lrs.append(settings.lr_gamma * lr_scale)
        adam.update(tensors, grads, lrs)
        for a in params.alpha:
            np.clip(a, 0.0, 1.0, out=a)
        if params.beta is not None:
            for b in params.beta:
                if b is not None:
                    np.maximum(b, 0.0, out=b)
        if params.gamma is not None:
            np.maximum(params.gamma, 0.0, out=params.gamma)
        if mixing:
            gw = objective.weight_gradient(p, g.z_hat)
            scale = np.abs(gw).max(axis=2, keepdims=True) + 1e-12
            params.weights *= np.exp(np.clip(settings.lr_weights * lr_scale * gw / scale, -30.0, 30.0)).astype(params.weights.dtype)
            params.weights /= params.weights.sum(axis=2, keepdims=True)
        lr_scale *= settings.decay
        p = bound(chain, region, relaxation, objective, params, start, fast)
        improved = p.value > best
        if np.any(improved):
            best = np.where(improved, p.value, best)
            _copy_where(best_params, params, improved)
    if not isinstance(objective, Objective):
        objective = (objective[0].astype(np.float64), objective[1].astype(np.float64))
    final = bound(chain, region, relaxation, objective, best_params, start, exact)
    if not settings.keep_start:
        return final.value, best_params, final
    first = bound(chain, region, relaxation, objective, initial, start, exact)
    worse = first.value > final.value
    if np.any(worse):  # round-off of the fast ascent made some row worse: keep its start
        _copy_where(best_params, initial, worse)
        final = bound(chain, region, relaxation, objective, best_params, start, exact)
    return final.value, best_params, final


def _copy_where(target: Parameters, source: Parameters, mask: np.ndarray) -> None:
    """``target[mask] = source[mask]`` for every tensor, ``mask`` (B, S) (whole rows, copied by index:
    faster than a masked copy)."""
    rows = np.nonzero(mask)
    tensors = list(zip(target.alpha, source.alpha))
    if target.beta is not None:
        tensors += [(t, s) for t, s in zip(target.beta, source.beta) if t is not None]
    if target.gamma is not None:
        tensors.append((target.gamma, source.gamma))
    if target.weights is not None:
        tensors.append((target.weights, source.weights))
    for t, s in tensors:
        t[rows] = s[rows]


# ------------------------------------------------------------------ intermediate bounds
def live_neurons(relaxation: Relaxation, layers: int) -> list[np.ndarray]:
    """Per hidden layer ``j < layers``: the neurons some sub-problem of the batch can use, i.e. not
    inactive by its bounds (``upper > 0``) or split (a split's multiplier carries its constraint)."""
    return [
        np.flatnonzero(np.any((hi > 0) | (s != 0), axis=0))
        for hi, s in zip(relaxation.upper[:layers], relaxation.split[:layers])
    ]


def restricted(chain: ReluChain, relaxation: Relaxation, keep: list[np.ndarray], start: int) -> tuple[ReluChain, Relaxation]:
    """The chain's affine layers ``0..start`` with only the hidden neurons ``keep[j]`` of each hidden
    layer ``j < start`` (layer ``start`` whole), and the relaxation of those neurons (dense weights).

    A pass over it is a pass over the whole chain with the removed neurons' bound multipliers at
    zero: a removed neuron is inactive by its bounds in every sub-problem (``h = 0``, exactly its
    relaxation) and not split, so every bound of the restricted chain is a sound bound of the
    whole one, and the same one when those multipliers would stay at zero.
    """
    weights, biases = [], []
    for k in range(start + 1):
        w, b = chain.weights[k], chain.biases[k]
        if k > 0:
            w = w[:, keep[k - 1]]
        if k < start:
            w, b = w[keep[k]], b[keep[k]]
        weights.append(w)
        biases.append(b)
    part = Relaxation(
        [lo[:, i] for lo, i in zip(relaxation.lower, keep)], [hi[:, i] for hi, i in zip(relaxation.upper, keep)],
        [s[:, i] for s, i in zip(relaxation.split, keep)], relaxation.batch,
    )
    return ReluChain(tuple(weights), tuple(biases)), part


def tighten_intermediate(
    chain: ReluChain,
    region: Region,
    relaxation: Relaxation,
    settings: OptimiseSettings,
    layers: range | None = None,
    max_rows: int = 4096,
    include_split: bool = False,
    with_beta: bool = False,
    deadline: float | None = None,
    record: list | None = None,
) -> Relaxation:
    """Re-bound the unstable neurons of hidden layers ``layers`` (default: all but the first) with
    optimised slopes, layer by layer (each layer uses the bounds just tightened below it).

    Returns a new relaxation whose bounds are the intersection of the old ones and the new ones
    (both sound on the constrained region, so the intersection is too). Split neurons keep their
    clamped bounds; without ``with_beta`` no multipliers are used, so splits act only through those
    bounds. With ``with_beta``, the bounds of the layers below that hold a split neuron in some sub-problem
    get optimised multipliers (a split acts through them); the other layers' are zero (sound, as any
    multipliers are: their bound constraints are the relaxation's own, and their multipliers gained
    next to nothing while costing two thirds of the ascent's parameters).
    Past ``deadline`` the remaining neurons keep the bounds they had (which are sound too).
    ``record`` (a list; batch of one only) receives ``(layer, neurons, signs, slopes)`` for the rows
    that were bounded, ``slopes`` (rows, all ReLUs) zero beyond the layers below (certificates).
    """
    hidden = len(chain.weights) - 1
    layers = range(1, hidden) if layers is None else layers
    if deadline is not None:
        settings = replace(settings, deadline=deadline)
    lower = [a.copy() for a in relaxation.lower]
    upper = [a.copy() for a in relaxation.upper]
    current = Relaxation(lower, upper, relaxation.split, relaxation.batch)
    batch = relaxation.batch
    # the old bounds are kept where tighter; certificates record the slopes of every neuron
    width_settings = replace(settings, stop_above=None, keep_start=False, restrict=settings.restrict and record is None)
    for j in layers:
        unstable = (lower[j] < 0) & (upper[j] > 0)
        if include_split:  # split neurons too: an empty constrained region shows as crossed bounds
            unstable |= relaxation.split[j] != 0
        counts = unstable.sum(axis=1)
        k = int(counts.max()) if counts.size else 0
        if k == 0:
            continue
        order = np.argsort(~unstable, axis=1, kind="stable")[:, :k]  # (B, k): unstable neurons first
        valid = np.take_along_axis(unstable, order, axis=1)
        for chunk in range(0, k, max(1, max_rows // 2)):
            if deadline is not None and time.monotonic() > deadline:
                return current
            sel = order[:, chunk : chunk + max_rows // 2]
            ok = valid[:, chunk : chunk + max_rows // 2]
            r = sel.shape[1]
            mu = np.zeros((batch, 2 * r, lower[j].shape[1]))
            rows_b = np.arange(batch)[:, None]
            mu[rows_b, np.arange(r)[None, :], sel] = 1.0
            mu[rows_b, r + np.arange(r)[None, :], sel] = -1.0
            params = initial_parameters(current, 2 * r, j, region, with_beta=with_beta)
            if params.beta is not None:  # multipliers only where they carry a split (see the docstring)
                params.beta = [b if np.any(current.split[k] != 0) else None for k, b in enumerate(params.beta)]
            value, best, _ = optimise(chain, region, current, (mu, np.zeros((batch, 2 * r))), params, width_settings, start=j)
            if record is not None and batch == 1:
                total = sum(a.shape[1] for a in lower)
                slopes = np.zeros((2 * r, total))
                below = np.concatenate([a[0] for a in best.alpha], axis=1) if j else np.zeros((2 * r, 0))
                slopes[:, : below.shape[1]] = below
                valid = np.concatenate([ok[0], ok[0]])
                neurons = np.concatenate([sel[0], sel[0]])
                signs = np.concatenate([np.ones(r), -np.ones(r)]).astype(np.int8)
                record.append((j, neurons[valid], signs[valid], slopes[valid]))
            new_lo, new_hi = value[:, :r], -value[:, r:]
            cur_lo = np.take_along_axis(lower[j], sel, axis=1)
            cur_hi = np.take_along_axis(upper[j], sel, axis=1)
            lo_j = np.where(ok, np.maximum(cur_lo, new_lo), cur_lo)
            hi_j = np.where(ok, np.minimum(cur_hi, new_hi), cur_hi)
            lo_j, hi_j = ordered(lo_j, hi_j)
            np.put_along_axis(lower[j], sel, lo_j, axis=1)
            np.put_along_axis(upper[j], sel, hi_j, axis=1)
    return current
