"""Training data: the digits split and the synthetic ACAS Xu-like advisory function."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reluverify.train import acas_like
from reluverify.train.acas_like import ADVISORIES, advisory, normalise


def _one(rho, theta, psi, v_own, v_int) -> str:
    return ADVISORIES[int(advisory(np.array([[rho, theta, psi, v_own, v_int]]))[0])]


def test_head_on_encounters_turn_away_from_the_side_the_intruder_passes():
    # intruder 10000 ft ahead, a little to the left (theta > 0), flying at us: closing at 1000 ft/s, tau ~ 10 s
    assert _one(10000, 0.05, math.pi, 500, 500) == "strong right"
    assert _one(10000, -0.05, math.pi, 500, 500) == "strong left"
    # the same geometry 40 s away is a weak advisory
    assert _one(40000, 0.05, math.pi, 500, 500) == "weak right"
    assert _one(40000, -0.05, math.pi, 500, 500) == "weak left"


def test_no_conflict_is_clear_of_conflict():
    assert _one(60000, 0.0, math.pi, 100, 100) == "COC"  # closest approach in 300 s, beyond the lookahead
    assert _one(5000, math.pi, 0.0, 500, 300) == "COC"  # behind us and slower: moving apart
    assert _one(20000, math.pi / 2, math.pi / 2, 500, 500) == "COC"  # abeam, flying parallel: never closer
    assert _one(20000, 0.8, math.pi, 500, 500) == "COC"  # passes 14000 ft to the side: outside 2 nmi


def test_crossing_traffic_from_the_right_passes_behind_or_ahead():
    # intruder on the right (theta < 0) heading left (psi = pi/2), geometry set up to collide at 20-40 s
    v = 600.0
    t = 30.0
    position = np.array([v * t, -v * t])  # meets us at (v t, 0) after t seconds
    rho, theta = float(np.hypot(*position)), float(np.arctan2(position[1], position[0]))
    assert _one(rho, theta, math.pi / 2, v, v) in ("weak left", "weak right")
    assert _one(rho * 0.5, theta, math.pi / 2, v, v) in ("strong left", "strong right")


def test_normalisation_is_acas_xu_s():
    # the constants behind VNN-COMP's ACAS Xu property 1: rho 55947.691 -> 0.6, v_own 1145 -> 0.45, v_int 0 -> -0.5
    x = normalise([[55947.691, 0.0, 0.0, 1145.0, 0.0]])[0]
    assert x == pytest.approx([0.6, 0.0, 0.0, 0.45, -0.5], abs=1e-9)
    assert normalise(acas_like.RAW_UPPER)[0] == pytest.approx(0.679857769, abs=1e-9)
    raw = acas_like.sample_raw(10, np.random.default_rng(0))
    assert np.allclose(acas_like.denormalise(normalise(raw)), raw)


def test_acas_split_is_fixed_and_its_test_part_independent_of_the_training_size():
    small, large = acas_like.acas_like_split(100), acas_like.acas_like_split(1000)
    assert np.array_equal(small.test_inputs, large.test_inputs)
    assert np.array_equal(small.train_inputs, large.train_inputs[:100])
    assert small.test_inputs.shape == (acas_like.TEST_SIZE, 5) and small.test_inputs.dtype == np.float32
    frequencies = np.bincount(small.test_labels, minlength=5) / acas_like.TEST_SIZE
    assert 0.75 < frequencies[0] < 0.87  # mostly clear of conflict, as documented (~81 %)
    assert np.all(frequencies[1:] > 0.02)  # every advisory occurs
    assert np.all(small.test_inputs >= normalise(acas_like.RAW_LOWER) - 1e-6)
    assert np.all(small.test_inputs <= normalise(acas_like.RAW_UPPER) + 1e-6)


def test_digits_split():
    pytest.importorskip("sklearn")
    from reluverify.train.data import digits_split

    split = digits_split()
    assert split.train_inputs.shape == (1347, 64) and split.test_inputs.shape == (450, 64)
    assert split.train_inputs.dtype == np.float32 and split.train_labels.dtype == np.int64
    assert split.train_inputs.min() == 0.0 and split.train_inputs.max() == 1.0
    assert np.bincount(split.test_labels).min() >= 43  # stratified: every digit ~10 % of the test set
    assert np.array_equal(digits_split().test_labels, split.test_labels)
