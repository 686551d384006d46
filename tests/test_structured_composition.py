"""Composed structured operators stay structured end to end (cGAN: a generator's last transposed
convolution feeds a discriminator's first convolution with no ReLU between).

* a product of convolutions and transposed convolutions (strides, pads, output padding, dilations,
  groups, 1-D), with a batch normalisation or a per-element scale between, is a :class:`Composite`
  that matches the dense product (forward, backward, rows) and whose ``abs_bound()`` is structured
  and at least ``|W|`` entry by entry (``|A||B| >= |AB|``), exact where ``absolute()`` is structured;
* sums, grids and repeats of such products keep ``abs_bound()`` structured and sound;
* the bounds (interval, DeepPoly, symbolic, row bounds, gradient magnitudes) of a small random CNN
  imported with such a product contain sampled true values, never ask for a dense matrix, and contain
  the interval bounds of the same chain made dense;
* the solver agrees with z3 on a small cGAN-like model (ConvTranspose, BatchNormalization, Relu,
  ConvTranspose then Conv) whose composed layer stays structured, on VNN-LIB queries.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from onnx import helper, numpy_helper

from onnx_builders import model, save, tensor, value
from test_bounds import _samples, assert_gradients_bound_differences
from reluverify import linear_ops as lo
from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import reference_model
from reluverify.solver import SolverOptions, solve
from reluverify.solver.bounds.deeppoly import deeppoly_bounds, forward_bounds, interval_bounds
from reluverify.solver.bounds.rows import gradient_magnitude, row_lower_bounds
from reluverify.solver.z3_encoding import decide_with_z3
from reluverify.vnnlib import load_query
from z3_agreement import verdicts_agree_with_z3


# ------------------------------------------------------------------ operators
def _transposed(rng, in_channels, out_channels, spatial, kernel, strides, pads, output_padding, groups, dilations=None):
    """ONNX's ConvTranspose (weight (in, out/groups, *kernel)) from ``in_channels x spatial`` as an operator."""
    nd = len(spatial)
    dilations = dilations or [1] * nd
    out_spatial = [(spatial[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - pads[i] - pads[i + nd]
                   + output_padding[i] for i in range(nd)]
    weight = rng.normal(size=(in_channels, out_channels // groups, *kernel))
    conv = lo.Conv(weight, (out_channels, *out_spatial), strides, pads, dilations, groups)
    assert conv.out_shape == (in_channels, *spatial)
    return lo.ConvTranspose(conv)


def _element_scale(rng, size):
    """A per-element scale with mixed signs (no per-channel constant: it does not fold into a kernel)."""
    return lo.diagonal(rng.uniform(0.5, 2.0, size=size) * rng.choice([-1.0, 1.0], size=size))


def _batchnorm(rng, channels, spatial_size):
    return lo.diagonal(np.repeat(rng.uniform(0.5, 2.0, size=channels) * rng.choice([-1.0, 1.0], size=channels), spatial_size))


def _case(name, rng):
    """(factors applied first to last) of one composition."""
    if name == "conv-after-convtranspose":  # strides, asymmetric pads, output padding, groups; BN between
        t = _transposed(rng, 4, 4, (3, 3), (3, 3), (2, 2), (1, 0, 0, 1), (1, 1), groups=2)
        _, h, w = t.out_shape
        return [t, _batchnorm(rng, 4, h * w), lo.Conv(rng.normal(size=(3, 4, 3, 3)), t.out_shape, (2, 2), (1, 1, 1, 1))]
    if name == "conv-after-convtranspose-scaled":  # a per-element scale between: three factors stay
        t = _transposed(rng, 2, 3, (3, 2), (2, 3), (2, 1), (0, 1, 1, 0), (1, 0), groups=1)
        c, h, w = t.out_shape
        conv = lo.Conv(rng.normal(size=(4, 3, 2, 2)), t.out_shape, (1, 2), (1, 0, 0, 1), dilations=(2, 1))
        return [t, _element_scale(rng, c * h * w), conv]
    if name == "conv-after-conv":  # groups in both, BN and a per-element scale between
        first = lo.Conv(rng.normal(size=(4, 1, 3, 3)), (2, 6, 5), (1, 2), (1, 1, 1, 1), groups=2)
        c, h, w = first.out_shape
        second = lo.Conv(rng.normal(size=(6, 2, 2, 2)), first.out_shape, (2, 1), (0, 1, 1, 0), groups=2)
        return [first, _batchnorm(rng, c, h * w), _element_scale(rng, c * h * w), second]
    if name == "convtranspose-after-conv-after-convtranspose":
        t = _transposed(rng, 2, 2, (2, 2), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), groups=1)
        conv = lo.Conv(rng.normal(size=(3, 2, 2, 2)), t.out_shape, (1, 1), (0, 0, 0, 0))
        c, h, w = conv.out_shape
        last = lo.ConvTranspose(lo.Conv(rng.normal(size=(3, 2, 2, 2)), (2, h + 1, w + 1), (1, 1), (0, 0, 0, 0)))
        return [t, conv, last]
    if name == "1d":
        t = _transposed(rng, 2, 2, (4,), (3,), (2,), (1, 0), (1,), groups=2)
        c, length = t.out_shape
        return [t, _element_scale(rng, c * length), lo.Conv(rng.normal(size=(3, 2, 2)), t.out_shape, (2,), (1, 1))]
    raise KeyError(name)


CASES = ["conv-after-convtranspose", "conv-after-convtranspose-scaled", "conv-after-conv",
         "convtranspose-after-conv-after-convtranspose", "1d"]


def _compose_all(factors, limit=0):
    weight = factors[0]
    for op in factors[1:]:
        weight = lo.compose(op, weight, limit=limit)
    return weight


def _product(factors):
    matrix = lo.dense(factors[0])
    for op in factors[1:]:
        matrix = lo.dense(op) @ matrix
    return matrix


def _check_bound(bound, matrix, exact=False):
    """``bound`` is structured and at least ``|matrix|`` entry by entry (equal to it when ``exact``)."""
    assert not isinstance(bound, np.ndarray)
    entries = lo.dense(bound)
    assert np.all(entries >= np.abs(matrix) - 1e-12)
    if exact:
        assert np.allclose(entries, np.abs(matrix), atol=1e-12)
    return entries


@pytest.mark.parametrize("case", CASES)
def test_a_product_of_convolutions_stays_structured_and_matches_the_dense_product(case):
    rng = np.random.default_rng(sorted(CASES).index(case))
    factors = _case(case, rng)
    weight = _compose_all(factors)
    matrix = _product(factors)
    assert isinstance(weight, lo.Composite) and not weight.exact_absolute, lo.describe(weight)
    x, c = rng.normal(size=(5, matrix.shape[1])), rng.normal(size=(4, matrix.shape[0]))
    assert np.allclose(lo.forward(weight, x), x @ matrix.T, atol=1e-11)
    assert np.allclose(lo.backward(weight, c), c @ matrix, atol=1e-11)
    assert np.allclose(lo.matvec(weight, x[0]), matrix @ x[0], atol=1e-11)
    index = rng.integers(0, matrix.shape[0], size=6)
    assert np.allclose(lo.rows(weight, index), matrix[index], atol=1e-11)
    assert np.allclose(lo.dense(weight), matrix, atol=1e-11)
    assert np.allclose(lo.dense(pickle.loads(pickle.dumps(weight))), matrix, atol=1e-11)
    # |W| exactly only as a dense matrix; the bound stays structured: the product of the factors' |.|
    assert np.allclose(lo.absolute(weight), np.abs(matrix), atol=1e-11)
    entries = _check_bound(lo.abs_bound(weight), matrix)
    assert np.allclose(entries, _product([lo.absolute(f) for f in factors]), atol=1e-11)
    # forward through the bound is the interval radius of step-by-step interval arithmetic
    radius = rng.uniform(0.0, 1.0, size=(3, matrix.shape[1]))
    assert np.all(lo.forward(lo.abs_bound(weight), radius) >= radius @ np.abs(matrix).T - 1e-11)


def test_an_exact_structured_absolute_is_the_bound(rng):
    """A product whose |W| is structured (permutation, conv, row scale) gives exactly |W| as its bound."""
    conv = lo.Conv(rng.normal(size=(2, 3, 3, 3)), (3, 4, 4), pads=[1, 1, 1, 1])
    perm = lo.IndexMap(rng.permutation(48), 48)
    after = lo.IndexMap(rng.permutation(32), 32, rng.normal(size=32))
    composite = lo.Composite([perm, conv, after])
    assert composite.exact_absolute
    _check_bound(lo.abs_bound(composite), lo.dense(composite), exact=True)
    for op in (conv, perm, after, lo.ConvTranspose(conv), lo.Sparse([0, 0, 2], [1, 3, 2], [1.0, -2.0, 3.0], (3, 4))):
        _check_bound(lo.abs_bound(op), lo.dense(op), exact=True)


def test_a_dense_weight_takes_the_ndarray_path(rng):
    w = rng.normal(size=(4, 5))
    assert np.array_equal(lo.abs_bound(w), np.abs(w))
    assert type(lo.abs_bound(w)) is np.ndarray


def test_sums_grids_and_repeats_of_products_keep_a_structured_bound(rng):
    factors = _case("conv-after-convtranspose", rng)
    product = _compose_all(factors)
    matrix = _product(factors)
    out_size, in_size = matrix.shape
    other = lo.ConvTranspose(lo.Conv(rng.normal(size=(4, 3, 2, 2)), (3, 4, 4)))  # a second path of the same shape
    assert lo.shape(other) == (out_size, in_size)
    total = lo.add(product, other, limit=0)
    assert isinstance(total, lo.Sum)
    _check_bound(lo.abs_bound(total), matrix + lo.dense(other))
    dense_block = rng.normal(size=(3, in_size))
    grid = lo.Blocks([out_size, 3], [in_size, in_size], {(0, 0): product, (0, 1): total, (1, 1): dense_block})
    reference = np.block([[matrix, matrix + lo.dense(other)], [np.zeros((3, in_size)), dense_block]])
    _check_bound(lo.abs_bound(grid), reference)
    _check_bound(lo.abs_bound(lo.Repeat(product, 3)), np.kron(np.eye(3), matrix))
    # a product inside a product: the bound of the whole is the product of the parts' bounds
    outer = lo.Composite([lo.Blocks([out_size], [in_size], {(0, 0): total}), _element_scale(rng, out_size)])
    _check_bound(lo.abs_bound(outer), lo.dense(outer))


def test_the_fold_limit_is_read_at_each_call(monkeypatch, rng):
    """compose() folds a small product to dense by default; patching FOLD_LIMIT is seen by later calls."""
    factors = _case("conv-after-convtranspose", rng)
    assert isinstance(_compose_all(factors, limit=None), np.ndarray)
    monkeypatch.setattr(lo.algebra, "FOLD_LIMIT", 0)
    assert isinstance(_compose_all(factors, limit=None), lo.Composite)


def test_a_product_too_large_for_dense_still_gives_its_bound(monkeypatch, rng):
    """The cGAN failure: dense() is refused, abs_bound() never asks for it."""
    factors = _case("conv-after-conv", rng)
    weight = _compose_all(factors)
    matrix = _product(factors)
    monkeypatch.setattr(lo.base, "DENSE_LIMIT", 10)
    with pytest.raises(Exception, match="too large"):
        lo.absolute(weight)
    bound = lo.abs_bound(weight)
    radius = rng.uniform(0.0, 1.0, size=(2, matrix.shape[1]))
    assert np.all(lo.forward(bound, radius) >= radius @ np.abs(matrix).T - 1e-11)


# ------------------------------------------------------------------ a small random CNN
def _cnn(tmp_path, rng):
    """x (3) -> Gemm 18 -> 2x3x3 -> Relu -> ConvTranspose (groups 2, stride 2, asymmetric pads, output
    padding) -> BatchNormalization -> per-element Mul -> Conv (stride 2, pad 1) -> Relu -> Conv -> Relu
    -> Gemm 2: the ConvTranspose, BN, Mul and first Conv are one affine layer."""
    nodes = [
        helper.make_node("Gemm", ["x", "W0", "b0"], ["g"], transB=1),
        helper.make_node("Reshape", ["g", "shape"], ["s"]),
        helper.make_node("Relu", ["s"], ["r0"]),
        helper.make_node("ConvTranspose", ["r0", "WT", "BT"], ["t"], strides=[2, 2], pads=[1, 1, 0, 0],
                         output_padding=[1, 1], group=2),
        helper.make_node("BatchNormalization", ["t", "gamma", "beta", "mean", "var"], ["n"]),
        helper.make_node("Mul", ["n", "scale"], ["m"]),
        helper.make_node("Conv", ["m", "WC", "BC"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "WD", "BD"], ["c2"]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("Gemm", ["f", "V", "c0"], ["y"], transB=1),
    ]
    inits = [
        tensor("W0", rng.normal(size=(18, 3))), tensor("b0", rng.normal(0, 0.5, size=18)),
        numpy_helper.from_array(np.array([1, 2, 3, 3], dtype=np.int64), "shape"),
        tensor("WT", rng.normal(size=(2, 2, 3, 3))), tensor("BT", rng.normal(0, 0.3, size=4)),
        tensor("gamma", rng.uniform(0.5, 1.5, size=4) * rng.choice([-1, 1], size=4)), tensor("beta", rng.normal(size=4)),
        tensor("mean", rng.normal(size=4)), tensor("var", rng.uniform(0.5, 2.0, size=4)),
        tensor("scale", rng.uniform(0.5, 1.5, size=(1, 4, 7, 7)) * rng.choice([-1, 1], size=(1, 4, 7, 7))),
        tensor("WC", rng.normal(0, 0.5, size=(3, 4, 3, 3))), tensor("BC", rng.normal(0, 0.3, size=3)),
        tensor("WD", rng.normal(0, 0.5, size=(4, 3, 2, 2))), tensor("BD", rng.normal(0, 0.3, size=4)),
        tensor("V", rng.normal(size=(2, 36))), tensor("c0", rng.normal(size=2)),
    ]
    return save(model(nodes, [value("x", [1, 3])], [value("y", [1, 2])], inits), tmp_path / "cnn.onnx")


def _structured_chain(path, monkeypatch):
    """The file's ReLU chain with every value structured and no product folded to dense."""
    monkeypatch.setattr(lo.algebra, "FOLD_LIMIT", 0)
    network = load_onnx(path, dense_limit=0)
    chain = network.relu_chain()
    products = [op for w in chain.weights for op in lo.iter_ops(w)
                if isinstance(op, lo.Composite) and not op.exact_absolute]
    assert products, [lo.describe(w) for w in chain.weights]
    assert any("transposed conv" in lo.describe(op) and "+conv" in lo.describe(op) for op in products)
    return network, chain




def _inside(values, lower, upper):
    slack = 1e-9 * (1 + np.abs(values))
    return bool(np.all(values >= lower[None] - slack) and np.all(values <= upper[None] + slack))


@pytest.mark.parametrize("seed", range(3))
def test_bounds_through_a_structured_product_contain_sampled_values(tmp_path, monkeypatch, seed):
    rng = np.random.default_rng(50 + seed)
    path = _cnn(tmp_path, rng)
    network, chain = _structured_chain(path, monkeypatch)
    x = rng.uniform(-1, 1, size=(16, 3))
    reference = reference_model(str(path))(x)
    assert np.max(np.abs(chain.evaluate(x) - reference)) <= 1e-6 * max(1.0, float(np.max(np.abs(reference))))
    boxes = 8
    centre = rng.uniform(-1, 1, size=(boxes, 3))
    width = rng.uniform(0.0, 0.5, size=(boxes, 3))
    lower, upper = centre - width, centre + width
    dense_chain = chain.densified()
    monkeypatch.setattr(lo.base, "DENSE_LIMIT", 0)  # nothing below may make a structured weight dense
    results = {
        "interval": interval_bounds(chain, lower, upper),
        "deeppoly": deeppoly_bounds(chain, lower, upper),
        "symbolic": forward_bounds(chain, lower, upper),
        "symbolic-refined": forward_bounds(chain, lower, upper, refine=True),
    }
    points = _samples(rng, lower, upper, 500)  # (S, B, n)
    y, pre = chain.forward(points.reshape(-1, 3))
    for name, bounds in results.items():
        for layer, values in enumerate(pre):
            assert _inside(values.reshape(500, boxes, -1), bounds.pre_lower[layer], bounds.pre_upper[layer]), (name, layer)
        assert _inside(y.reshape(500, boxes, -1), bounds.out_lower, bounds.out_upper), name
    # |A||B| >= |AB|: interval arithmetic through the product contains that of the dense chain
    exact = interval_bounds(dense_chain, lower, upper)
    loose = results["interval"]
    for layer in range(len(pre)):
        assert np.all(loose.pre_lower[layer] <= exact.pre_lower[layer] + 1e-9)
        assert np.all(loose.pre_upper[layer] >= exact.pre_upper[layer] - 1e-9)
    # the row bounds and gradient magnitudes read the same weights
    rows_out, rows_in = rng.normal(size=(3, 2)), rng.normal(size=(3, 3)) * (rng.random((3, 1)) < 0.5)
    rhs = rng.normal(size=3)
    layer_bounds = results["deeppoly"]
    row_bounds = row_lower_bounds(chain, lower, upper, layer_bounds, rows_out, rows_in, rhs)
    flat = points.reshape(-1, 3)
    values = (y @ rows_out.T + flat @ rows_in.T - rhs).reshape(500, boxes, 3)
    assert np.all(values >= row_bounds.lower[None] - 1e-9 * (1 + np.abs(values)))
    grad = gradient_magnitude(chain, layer_bounds, np.broadcast_to(rows_out, (boxes, 3, 2)),
                              np.broadcast_to(rows_in, (boxes, 3, 3)))
    assert_gradients_bound_differences(rng, chain, grad, lower, upper, rows_out, rows_in, 1e-5)


# ------------------------------------------------------------------ a cGAN-like model against z3
def _cgan_like(tmp_path, rng):
    """z (2) -> Gemm 4 -> Relu -> 1x2x2 -> ConvTranspose (stride 2, pad 1) 2x3x3 -> BatchNormalization -> Relu
    -> ConvTranspose 1x3x3 -> Conv (stride 2, pad 1) 2x2x2 -> Relu -> Gemm 1: a generator whose image goes
    straight into a discriminator (the last two are one affine layer)."""
    nodes = [
        helper.make_node("Gemm", ["z", "W0", "b0"], ["g"], transB=1),
        helper.make_node("Relu", ["g"], ["g1"]),
        helper.make_node("Reshape", ["g1", "shape"], ["s"]),
        helper.make_node("ConvTranspose", ["s", "WT", "BT"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["t", "gamma", "beta", "mean", "var"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("ConvTranspose", ["r", "WI", "BI"], ["image"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["image", "WC", "BC"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["d"]),
        helper.make_node("Flatten", ["d"], ["f"]),
        helper.make_node("Gemm", ["f", "V", "c0"], ["y"], transB=1),
    ]
    inits = [
        tensor("W0", rng.normal(size=(4, 2))), tensor("b0", rng.normal(0, 0.5, size=4)),
        numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.int64), "shape"),
        tensor("WT", rng.normal(size=(1, 2, 3, 3))), tensor("BT", rng.normal(0, 0.3, size=2)),
        tensor("gamma", rng.uniform(0.5, 1.5, size=2)), tensor("beta", rng.normal(0, 0.5, size=2)),
        tensor("mean", rng.normal(0, 0.5, size=2)), tensor("var", rng.uniform(0.5, 2.0, size=2)),
        tensor("WI", rng.normal(size=(2, 1, 3, 3))), tensor("BI", rng.normal(0, 0.3, size=1)),
        tensor("WC", rng.normal(size=(2, 1, 3, 3))), tensor("BC", rng.normal(0, 0.3, size=2)),
        tensor("V", rng.normal(size=(1, 8))), tensor("c0", rng.normal(size=1)),
    ]
    return save(model(nodes, [value("z", [1, 2])], [value("y", [1, 1])], inits), tmp_path / "cgan_like.onnx")


def _spec(tmp_path, name, lower, upper, threshold) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(len(lower))] + ["(declare-const Y_0 Real)"]
    for i, (a, b) in enumerate(zip(lower, upper)):
        lines += [f"(assert (>= X_{i} {float(a)!r}))", f"(assert (<= X_{i} {float(b)!r}))"]
    lines.append(f"(assert (<= Y_0 {float(threshold)!r}))")
    path = tmp_path / f"{name}.vnnlib"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_cgan_like_model_agrees_with_z3(tmp_path, monkeypatch):
    rng = np.random.default_rng(21)
    path = _cgan_like(tmp_path, rng)
    network, chain = _structured_chain(path, monkeypatch)
    x = rng.uniform(-1, 1, size=(16, 2))
    reference = reference_model(str(path))(x)
    assert np.max(np.abs(chain.evaluate(x) - reference)) <= 1e-6 * max(1.0, float(np.max(np.abs(reference))))
    verdicts = []
    for k in range(2):
        centre = rng.uniform(-1, 1, size=2)
        lower, upper = centre - 0.3, centre + 0.3
        values = network.evaluate(rng.uniform(lower, upper, size=(4000, 2)))[:, 0]
        spread = float(np.ptp(values)) + 0.1
        for threshold in (float(values.min()) + 1e-3, float(values.min()) - 0.1 * spread):
            query = load_query(network, _spec(tmp_path, f"q{k}_{len(verdicts)}", lower, upper, threshold))
            truth = decide_with_z3(query, timeout_s=20)
            if truth.verdict not in ("sat", "unsat"):
                continue
            for strategy in ("auto", "input-split", "relu-bab"):
                ours = solve(query, SolverOptions(timeout=30, strategy=strategy))
                assert ours.verdict == truth.verdict, (k, threshold, strategy, ours.verdict, truth.verdict)
                if ours.verdict == "sat":  # the counterexample is onnxruntime's too
                    y = reference_model(str(path))(np.asarray(ours.counterexample.inputs)[None, :2])[0, 0]
                    assert y <= threshold + 1e-6 * max(1.0, abs(threshold))
            verdicts.append(truth.verdict)
    assert "sat" in verdicts and "unsat" in verdicts, verdicts
    # and z3 against the relu-split search on another box
    assert verdicts_agree_with_z3(network, rng, 0.3, rounds=1)
