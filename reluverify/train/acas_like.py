"""A synthetic ACAS Xu-like advisory function, with ACAS Xu's inputs and their normalisation.

Inputs, as in ACAS Xu (Julian et al.; Katz et al. 2017), in the ownship's frame
(angles counter-clockwise, so positive means "to the left"):

====  ========  ==========================================  ==================
 #    name      meaning                                      range
====  ========  ==========================================  ==================
 0    rho       distance to the intruder (ft)                [0, 60760]
 1    theta     bearing of the intruder from own heading     [-pi, pi]
 2    psi       intruder heading relative to own heading     [-pi, pi]
 3    v_own     ownship speed (ft/s)                         [100, 1200]
 4    v_int     intruder speed (ft/s)                        [0, 1200]
====  ========  ==========================================  ==================

Networks see normalised inputs ``(raw - MEANS) / RANGES`` with ACAS Xu's constants
(the ones in the VNN-COMP ACAS Xu properties' comments), and give five scores in
ACAS Xu's order: clear of conflict (COC), weak left, weak right, strong left, strong
right; **the advisory is the minimal score**, as in ACAS Xu.

The advisory function (this is the definition, not an approximation of the real
ACAS Xu tables). Both aircraft fly straight at constant speed: the intruder sits at
``p = rho (cos theta, sin theta)`` and moves at ``u = v_int (cos psi, sin psi) - (v_own, 0)``
relative to the ownship. The time of closest approach is ``tau = -(p . u) / |u|^2``
and the miss distance ``d = |p + tau u|``.

* COC unless the aircraft are closing (``p . u < 0``), closest approach is within
  :data:`LOOKAHEAD_S` (60 s) and ``d`` < :data:`PROTECTED_RADIUS_FT` (2 nmi).
* Otherwise turn away from the side on which the intruder passes: right when the
  point of closest approach is to the left (its lateral coordinate ``> 0``), else left.
* Strong when closest approach is within :data:`STRONG_WITHIN_S` (20 s), else weak.

Inputs are drawn uniformly from the box above; about 81 % of them are COC.
"""

from __future__ import annotations

import math

import numpy as np

from reluverify.train.data import LabelledSplit

INPUT_NAMES = ("rho", "theta", "psi", "v_own", "v_int")
RAW_LOWER = np.array([0.0, -math.pi, -math.pi, 100.0, 0.0])
RAW_UPPER = np.array([60760.0, math.pi, math.pi, 1200.0, 1200.0])
MEANS = np.array([19791.091, 0.0, 0.0, 650.0, 600.0])
RANGES = np.array([60261.0, 2.0 * math.pi, 2.0 * math.pi, 1100.0, 1200.0])
ADVISORIES = ("COC", "weak left", "weak right", "strong left", "strong right")

LOOKAHEAD_S = 60.0
PROTECTED_RADIUS_FT = 12152.0  # 2 nautical miles
STRONG_WITHIN_S = 20.0

ACAS_DATA_SEED = 2017
TEST_SIZE = 20_000


def normalise(raw: np.ndarray) -> np.ndarray:
    """ACAS Xu input normalisation, ``(raw - MEANS) / RANGES``, row by row."""
    return (np.asarray(raw, dtype=np.float64) - MEANS) / RANGES


def denormalise(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) * RANGES + MEANS


def advisory(raw: np.ndarray) -> np.ndarray:
    """The advisory index (into :data:`ADVISORIES`) for raw inputs of shape (n, 5)."""
    raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
    rho, theta, psi, v_own, v_int = raw.T
    px, py = rho * np.cos(theta), rho * np.sin(theta)
    ux, uy = v_int * np.cos(psi) - v_own, v_int * np.sin(psi)
    closing_rate = px * ux + py * uy  # d/dt |p|^2 / 2
    speed2 = ux * ux + uy * uy
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(speed2 > 0.0, -closing_rate / speed2, np.inf)
    conflict = (closing_rate < 0.0) & (tau <= LOOKAHEAD_S)
    lateral = py + np.where(conflict, tau, 0.0) * uy
    miss = np.hypot(px + np.where(conflict, tau, 0.0) * ux, lateral)
    conflict &= miss < PROTECTED_RADIUS_FT
    strong = tau <= STRONG_WITHIN_S
    turn_right = lateral > 0.0
    out = np.zeros(rho.shape, dtype=np.int64)
    out[conflict] = 1 + turn_right[conflict] + 2 * strong[conflict]
    return out


def sample_raw(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` raw inputs drawn uniformly from the ACAS Xu input box."""
    return RAW_LOWER + (RAW_UPPER - RAW_LOWER) * rng.random((n, 5))


def acas_like_split(train_size: int) -> LabelledSplit:
    """Normalised inputs labelled by :func:`advisory`.

    The training set is the first ``train_size`` draws of one fixed stream and the
    held-out set (:data:`TEST_SIZE` inputs) comes from another, so it does not depend
    on ``train_size`` or on any training seed.
    """
    if train_size < 1:
        raise ValueError("the training set needs at least one input")
    train_raw = sample_raw(train_size, np.random.default_rng([ACAS_DATA_SEED, 0]))
    test_raw = sample_raw(TEST_SIZE, np.random.default_rng([ACAS_DATA_SEED, 1]))
    return LabelledSplit(
        normalise(train_raw).astype(np.float32),
        advisory(train_raw),
        normalise(test_raw).astype(np.float32),
        advisory(test_raw),
        description={
            "name": "synthetic ACAS Xu-like advisories",
            "source": "reluverify.train.acas_like.advisory (documented in its module)",
            "input": "rho, theta, psi, v_own, v_int normalised as ACAS Xu: (raw - means) / ranges",
            "means": MEANS.tolist(),
            "ranges": RANGES.tolist(),
            "raw_lower": RAW_LOWER.tolist(),
            "raw_upper": RAW_UPPER.tolist(),
            "output": "scores for " + ", ".join(ADVISORIES) + "; the advisory is the minimal score",
            "rule": {
                "lookahead_s": LOOKAHEAD_S,
                "protected_radius_ft": PROTECTED_RADIUS_FT,
                "strong_within_s": STRONG_WITHIN_S,
            },
            "train": int(train_size),
            "test": TEST_SIZE,
            "sampling": f"uniform over the raw input box; numpy default_rng([{ACAS_DATA_SEED}, 0]) for train, "
            f"[{ACAS_DATA_SEED}, 1] for test",
        },
    )
