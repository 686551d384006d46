"""Which ReLU to split: filtered smart branching.

Per sub-problem, the free unstable ReLUs are scored by their relaxation gap weighted by their
coefficient in the bound (:func:`branch_scores`, a cheap filter); the best-scored candidates are
then bounded exactly, both children each, with the parent's parameters (:func:`choose_branch`),
and the candidate whose worse child is best is split.

Invariant: every child bound computed here is sound (any parameters give a sound bound), so a
child refuted here holds no counterexample; that makes the implied phases and refuted
sub-problems of :class:`Branching` safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.bounds.relaxation import triangle_height
from reluverify.solver.relu_bab.targets import Items

BRANCH_CANDIDATES = 64
"""ReLUs scored by both children's bounds per sub-problem. A joint search scores each candidate for
every open target, so this is a budget of scored candidates per sub-problem, shared by its open
targets (at least 8 each)."""


def branch_scores(p: alpha_crown.Pass, relaxation: alpha_crown.Relaxation, earliest: bool = False) -> list[np.ndarray]:
    """Per hidden layer (B, n_j): each free unstable ReLU's relaxation gap (the triangle's height
    ``u (-l) / (u - l)``) times the magnitude of its coefficient; -inf for the others. With
    ``earliest``, only the first layer that has a free unstable ReLU (per sub-problem) has candidates.

    Only a filter: the candidates it ranks highest are bounded exactly.
    """
    scores = []
    below = np.zeros(relaxation.batch, dtype=bool)  # a layer below has a free unstable ReLU
    for j, (lo, hi, s) in enumerate(zip(relaxation.lower, relaxation.upper, relaxation.split)):
        free = (lo < 0) & (hi > 0) & (s == 0)
        if earliest:
            free &= ~below[:, None]
            below |= free.any(axis=1)
        scores.append(np.where(free, np.abs(p.nu[j][:, 0, :]) * triangle_height(lo, hi), -np.inf))
    return scores


@dataclass
class Branching:
    """What filtered smart branching found for a batch of sub-problems.

    ``layer``/``neuron`` (B,): the ReLU to split; ``children`` (items, 2): per item, the bounds of its
    sub-problem's active and inactive child for its target with the parent's parameters (sound, so a
    target above the margin is refuted in that child); ``implied``: (sub-problem, layer, neuron,
    phase) of candidates one of whose children is refuted for every target, so the other phase
    holds wherever a counterexample can be; ``refuted`` (B,): some candidate has both children
    refuted for every target, so the sub-problem holds no counterexample at all.
    """

    layer: np.ndarray
    neuron: np.ndarray
    children: np.ndarray
    implied: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    refuted: np.ndarray


def choose_branch(
    chain: ReluChain,
    region: alpha_crown.Region,
    relaxation: alpha_crown.Relaxation,
    params: alpha_crown.Parameters,
    p: alpha_crown.Pass,
    items: Items,
    margin: float,
    implied: bool = True,
    earliest: bool = False,
    candidates: int = BRANCH_CANDIDATES,
) -> Branching:
    """Filtered smart branching: per sub-problem, the (layer, neuron) whose worse child bound is best.

    ``region``, ``relaxation``, ``params`` and the pass ``p`` are per item (see :class:`Items`).
    The free unstable ReLUs with the largest scores (summed over the sub-problem's open targets)
    are tried, ``candidates`` divided by the batch's mean number of open targets per sub-problem
    (at least 8; each is bounded for every open target): each child's bound is the pass ``p`` with
    the neuron's relaxation replaced by its phase (the rest of the pass kept above its layer,
    recomputed below it), with the current parameters. Every such bound is sound (any parameters
    give a sound bound), which makes the implied phases safe; a child counts as refuted when it is
    for every open target, and a candidate ranks by its worse child's bound for the sub-problem's
    hardest target. With ``implied=False`` (when a proof is recorded: each refuted child must be a
    leaf of the proof tree with its own evidence) no phase is implied and no sub-problem refuted
    here. With ``earliest``, the candidates are the free unstable ReLUs of each sub-problem's first
    layer that has any.
    """
    item_scores = np.concatenate(branch_scores(p, relaxation, earliest), axis=1)  # (items, N)
    batch = items.first.size
    flat = np.zeros((batch, item_scores.shape[1]))
    np.add.at(flat, items.owner, np.where(np.isfinite(item_scores), item_scores, 0.0))
    flat[~np.isfinite(item_scores[items.first])] = -np.inf  # which ReLUs are free is the sub-problem's
    sizes = [lo.shape[1] for lo in relaxation.lower]
    offsets = np.cumsum([0] + sizes)
    k = min(max(8, int(candidates * batch / items.size)), candidates, flat.shape[1])
    top = np.argpartition(-flat, k - 1, axis=1)[:, :k] if k < flat.shape[1] else np.tile(np.arange(flat.shape[1]), (batch, 1))
    valid = np.isfinite(np.take_along_axis(flat, top, axis=1))[items.owner]
    layer_of = (np.searchsorted(offsets, top, side="right") - 1)[items.owner]
    neuron_of = top[items.owner] - offsets[layer_of]
    # rank in float32 (twice as fast); a child that looks refuted is bounded again in float64, and
    # only float64 bounds refute anything
    fast = alpha_crown.layer_terms(relaxation, region, np.float32)
    ranking = child_bounds(chain, region, relaxation, params, p, layer_of, neuron_of, valid, fast)
    suspect = np.any(ranking > margin - 1e-4 * (1.0 + np.abs(ranking)), axis=2) & valid
    exact = np.full(ranking.shape, -np.inf)
    if np.any(suspect):
        exact = child_bounds(
            chain, region, relaxation, params, p, layer_of, neuron_of, suspect, alpha_crown.layer_terms(relaxation, region)
        )
    dead = items.all_of(exact > margin) & implied  # (B, k, 2): refuted for every open target
    refuted = np.any(dead.all(axis=2), axis=1)
    one = dead.any(axis=2) & ~dead.all(axis=2)
    b_imp, c_imp = np.nonzero(one)
    layer_sub, neuron_sub = layer_of[items.first], neuron_of[items.first]
    implied = (b_imp, layer_sub[b_imp, c_imp], neuron_sub[b_imp, c_imp], np.where(dead[b_imp, c_imp, 1], 1, -1).astype(np.int8))
    worse = np.where(one, -np.inf, items.min_of(ranking.min(axis=2)))  # an implied phase is no branch
    best = worse.argmax(axis=1)
    rows = np.arange(batch)
    return Branching(layer_sub[rows, best], neuron_sub[rows, best], exact[np.arange(items.size), best[items.owner]], implied, refuted)


def child_bounds(chain, region, relaxation, params, p, layer_of, neuron_of, mask, terms) -> np.ndarray:
    """(B, k, 2): the bounds of the active and inactive child of each candidate where ``mask`` holds
    (-inf elsewhere), in the float type of ``terms``."""
    values = np.full(layer_of.shape + (2,), -np.inf)
    for j in np.unique(layer_of[mask]):
        b_idx, c_idx = np.nonzero((layer_of == j) & mask)
        i = neuron_of[b_idx, c_idx]
        rows = np.arange(b_idx.size)
        nu = p.nu[j][b_idx, 0, i]
        linear = nu * p.slope[j][b_idx, 0, i]  # the neuron's relaxed term, replaced in each child
        const = p.const_at[j][b_idx, 0] - nu * p.intercept[j][b_idx, 0, i]
        mu = np.repeat(p.mu_at[j][b_idx, 0, :][:, None, :], 2, axis=1)
        mu[rows, 0, i] += nu - linear  # active child: h = z
        mu[rows, 1, i] -= linear  # inactive child: h = 0
        sub_params = params.take(b_idx)
        const = np.repeat(const[:, None], 2, axis=1)
        if sub_params.beta is not None:  # the clamped bound moves the constant of its multiplier
            beta = np.maximum(sub_params.beta[j][rows, 0, i], 0.0)
            const[:, 0] -= beta[:, 0] * np.minimum(relaxation.lower[j][b_idx, i], 0.0)
            const[:, 1] += beta[:, 1] * np.maximum(relaxation.upper[j][b_idx, i], 0.0)
        child = alpha_crown.backward(
            chain,
            region.take(b_idx),
            relaxation.take(b_idx),
            mu,
            const,
            j,
            None if p.input_coef is None else p.input_coef[b_idx].astype(terms.dtype),
            sub_params.alpha[:j],
            None if sub_params.beta is None else sub_params.beta[:j],
            sub_params.gamma,
            record=False,
            terms=alpha_crown.take_terms(terms, b_idx),
        )
        values[b_idx, c_idx] = child.value
    return values
