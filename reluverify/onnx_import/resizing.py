"""Resizing operators: Upsample and Resize, modes ``nearest`` and ``linear`` (both linear maps, exact).

The output size comes from ``sizes`` or ``floor(size * scale)``; along each axis an output position
``x`` reads the input coordinate that the coordinate transformation gives (``half_pixel``,
``pytorch_half_pixel``, ``asymmetric``, ``tf_half_pixel_for_nn``, ``align_corners``; Upsample and
Resize before opset 11 use ``asymmetric``), computed in float32 as onnxruntime does. ``nearest``
rounds it (``nearest_mode``; before opset 11: down, or up when shrinking) and picks that element: an
index map on each axis. ``linear`` clamps it into the axis and mixes the two neighbours with weights
``1 - frac`` and ``frac``: one sparse operator over the flat tensor (``2^k`` terms per output for
``k`` resized axes). An axis of scale 1 and unchanged size is copied, as onnxruntime copies it. Cubic
interpolation, ``tf_crop_and_resize`` and the opset-18 attributes (``axes``, ``antialias``, ...) are
refused by name.
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lo
from reluverify.errors import NetworkError
from reluverify.onnx_import.registry import const, need, operator
from reluverify.onnx_import.selection import selected
from reluverify.onnx_import.values import apply_op, as_float, elements, shape_of, traced

_TRANSFORMS = {
    "half_pixel": lambda x, scale, n_in, n_out: (x + 0.5) / scale - 0.5,
    "pytorch_half_pixel": lambda x, scale, n_in, n_out: (x + 0.5) / scale - 0.5 if n_out > 1 else 0.0 * x,
    "asymmetric": lambda x, scale, n_in, n_out: x / scale,
    "tf_half_pixel_for_nn": lambda x, scale, n_in, n_out: (x + 0.5) / scale,
    "align_corners": lambda x, scale, n_in, n_out: (
        x * np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else 0.0 * x),
}
_ROUNDING = {
    "round_prefer_floor": lambda c: np.where(c - np.floor(c) == 0.5, np.floor(c), np.round(c)),
    "round_prefer_ceil": lambda c: np.where(c - np.floor(c) == 0.5, np.ceil(c), np.round(c)),
    "floor": np.floor,
    "ceil": np.ceil,
}
LEGACY = ("asymmetric", "simple")
"""The coordinate transformation and rounding of Upsample and Resize before opset 11."""


def _text(attrs, name: str, default: str) -> str:
    raw = attrs.get(name, default)
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _coordinates(n_in: int, n_out: int, scale: float, transform: str) -> np.ndarray | None:
    """The input coordinate of each output position (float32), or None for an axis that is copied."""
    if np.float32(scale) == 1 and n_out == n_in:
        return None
    x = np.arange(n_out, dtype=np.float32)
    return np.asarray(_TRANSFORMS[transform](x, np.float32(scale), n_in, n_out), dtype=np.float32)


def nearest_indices(n_in: int, n_out: int, scale: float, transform: str, rounding: str) -> np.ndarray:
    """For each of ``n_out`` output positions, the input position nearest-neighbour resizing reads."""
    original = _coordinates(n_in, n_out, scale, transform)
    if original is None:
        return np.arange(n_out, dtype=np.int64)
    if rounding == "simple":  # truncate, or round up when shrinking
        picked = np.ceil(original) if scale < 1 else np.floor(original)
    else:
        picked = _ROUNDING[rounding](original)
    return np.clip(picked, 0, n_in - 1).astype(np.int64)


def linear_terms(n_in: int, n_out: int, scale: float, transform: str) -> tuple[np.ndarray, np.ndarray]:
    """For each output position, the input positions linear interpolation reads and their weights
    (arrays of shape (n_out, terms))."""
    original = _coordinates(n_in, n_out, scale, transform)
    if original is None:
        return np.arange(n_out, dtype=np.int64)[:, None], np.ones((n_out, 1))
    original = np.clip(original, np.float32(0), np.float32(n_in - 1))
    low = np.minimum(np.floor(original).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    frac = np.asarray(original - low.astype(np.float32), dtype=np.float64)
    frac = np.where(low == high, 0.0, frac)
    return np.stack([low, high], axis=1), np.stack([1.0 - frac, frac], axis=1)


def _interpolation(shape, out_shape, terms) -> lo.Sparse:
    """The flat operator mixing, for every output element, the products of its axes' terms."""
    index, weight = np.zeros((1, 1), dtype=np.int64), np.ones((1, 1))
    for n_in, (axis_index, axis_weight) in zip(shape, terms):
        count = index.shape[1] * axis_index.shape[1]
        index = (index[:, None, :, None] * n_in + axis_index[None, :, None, :]).reshape(-1, count)
        weight = (weight[:, None, :, None] * axis_weight[None, :, None, :]).reshape(-1, count)
    rows = np.repeat(np.arange(index.shape[0]), index.shape[1])
    return lo.Sparse(rows, index.ravel(), weight.ravel(), (elements(out_shape), elements(shape)))


def resize(tracer, v, scales, sizes, mode: str, transform: str, rounding: str, where: str):
    """``v`` resized to ``sizes`` (or by ``scales``) with ``mode`` ``nearest`` or ``linear``."""
    shape = shape_of(v)
    if sizes is not None:
        out_shape = tuple(int(s) for s in sizes)
        scales = [np.float32(o) / np.float32(i) if i else np.float32(1) for o, i in zip(out_shape, shape)]
    else:
        out_shape = tuple(int(np.floor(d * np.float32(s))) for d, s in zip(shape, scales))
    if len(out_shape) != len(shape) or len(scales) != len(shape) or min(out_shape, default=1) < 1:
        raise NetworkError(f"{where}: scales or sizes do not fit a tensor of shape {shape}")
    if any(float(s) <= 0 for s in scales):
        raise NetworkError(f"{where}: scales must be positive")
    if mode == "linear":
        op = _interpolation(shape, out_shape, [linear_terms(n, m, float(s), transform)
                                               for n, m, s in zip(shape, out_shape, scales)])
        if not traced(v):
            return lo.forward(op, as_float(v).reshape(1, -1)).reshape(out_shape)
        return apply_op(tracer, v, op, out_shape, where)
    picks = [nearest_indices(n, m, float(s), transform, rounding) for n, m, s in zip(shape, out_shape, scales)]

    def fn(t):
        for axis, index in enumerate(picks):
            t = np.take(t, index, axis=axis + 1)
        return t

    if not traced(v):
        return fn(np.asarray(v)[None])[0]
    return selected(tracer, v, out_shape, fn, where)


def _mode(attrs, where: str) -> str:
    mode = _text(attrs, "mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise NetworkError(f"{where}: resizing mode {mode!r} is not supported (only 'nearest' and 'linear')")
    return mode


@operator("Upsample", attributes=("mode", "scales"))
def op_upsample(tracer, inputs, attrs, where):
    mode = _mode(attrs, where)
    v = need(inputs, 0, where)
    if len(inputs) > 1 and inputs[1] is not None:
        scales = [float(s) for s in np.ravel(const(inputs[1], where, "scales"))]
    else:
        scales = [float(s) for s in attrs["scales"]]
    return [resize(tracer, v, scales, None, mode, *LEGACY, where)]


@operator("Resize", attributes=("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                                "exclude_outside", "extrapolation_value"))
def op_resize(tracer, inputs, attrs, where):
    mode = _mode(attrs, where)
    v = need(inputs, 0, where)
    if tracer.opset < 11:
        scales = [float(s) for s in np.ravel(const(need(inputs, 1, where), where, "scales"))]
        return [resize(tracer, v, scales, None, mode, *LEGACY, where)]
    transform = _text(attrs, "coordinate_transformation_mode", "half_pixel")
    rounding = _text(attrs, "nearest_mode", "round_prefer_floor")
    if transform not in _TRANSFORMS:
        raise NetworkError(f"{where}: coordinate_transformation_mode {transform!r} is not supported")
    if rounding not in _ROUNDING:
        raise NetworkError(f"{where}: nearest_mode {rounding!r} is not supported")
    scales = inputs[2] if len(inputs) > 2 else None
    sizes = inputs[3] if len(inputs) > 3 else None
    scales = None if scales is None or not np.size(const(scales, where, "scales")) else np.ravel(scales)
    sizes = None if sizes is None or not np.size(const(sizes, where, "sizes")) else np.ravel(sizes)
    if (scales is None) == (sizes is None):
        raise NetworkError(f"{where}: exactly one of scales and sizes must be given")
    return [resize(tracer, v, None if scales is None else [float(s) for s in scales], sizes, mode, transform,
                   rounding, where)]
