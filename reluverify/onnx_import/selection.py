"""Selection operators on traced tensors: Expand, Where (with a constant condition), Upsample and
Resize (mode ``nearest``).

All are linear and exact: Expand broadcasts (an index map); Where with a constant condition is
``x * mask + y * (1 - mask)`` (a constant side contributes ``where(mask, x, 0)``); nearest-neighbour
resizing picks, along each axis, the input index that ONNX's coordinate transformation and rounding
give each output index (an index map). A condition that depends on the input is refused. Constant
uses are normally folded before tracing (:mod:`.folding`); here they are evaluated with numpy.
"""

from __future__ import annotations

import numpy as np

from reluverify.errors import NetworkError
from reluverify.onnx_import.registry import const, need, operator
from reluverify.onnx_import.values import (
    Affine,
    add,
    as_float,
    elements,
    move,
    multiply,
    shape_of,
    to_linear,
    traced,
)


def _selected(tracer, v, out_shape, fn, where):
    """``move(v, fn)`` in the form the size rule picks for a result of ``out_shape``."""
    if isinstance(v, Affine) and tracer.structured(v, elements(out_shape), where):
        v = to_linear(v)
    return move(v, fn)


@operator("Expand")
def op_expand(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    target = tuple(int(d) for d in np.ravel(const(inputs[1] if len(inputs) > 1 else None, where, "the shape input")))
    out_shape = tuple(np.broadcast_shapes(shape_of(v), target))
    if not traced(v):
        return [np.broadcast_to(np.asarray(v), out_shape).copy()]
    lifted = (1,) * (len(out_shape) - len(shape_of(v))) + shape_of(v)  # the lower rank padded with leading 1s
    return [_selected(tracer, v, out_shape,
                      lambda t: np.broadcast_to(t.reshape((t.shape[0],) + lifted), (t.shape[0],) + out_shape), where)]


@operator("Where")
def op_where(tracer, inputs, attrs, where):
    condition = np.asarray(const(need(inputs, 0, where), where, "the condition")).astype(bool)
    x, y = need(inputs, 1, where), need(inputs, 2, where)
    if not traced(x) and not traced(y):
        return [np.where(condition, x, y)]
    shape = tuple(np.broadcast_shapes(condition.shape, shape_of(x), shape_of(y)))
    mask = np.broadcast_to(condition, shape)

    def side(v, keep):
        if traced(v):
            return multiply(tracer, v, keep.astype(np.float64), where)
        return np.where(keep, np.broadcast_to(as_float(v), shape), 0.0)

    return [add(tracer, side(x, mask), side(y, ~mask), where)]


# ---------------------------------------------------------------- resizing
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


def _text(attrs, name: str, default: str) -> str:
    raw = attrs.get(name, default)
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def nearest_indices(n_in: int, n_out: int, scale: float, transform: str, rounding: str) -> np.ndarray:
    """For each of ``n_out`` output positions, the input position nearest-neighbour resizing reads
    (coordinates in float32, as onnxruntime computes them; an axis of scale 1 is copied)."""
    x = np.arange(n_out, dtype=np.float32)
    if np.float32(scale) == 1 and n_out == n_in:  # onnxruntime copies an axis it does not scale
        return np.arange(n_out, dtype=np.int64)
    original = np.asarray(_TRANSFORMS[transform](x, np.float32(scale), n_in, n_out), dtype=np.float32)
    if rounding == "simple":  # Upsample and Resize-10: truncate, or round up when shrinking
        picked = np.ceil(original) if scale < 1 else np.floor(original)
    else:
        picked = _ROUNDING[rounding](original)
    return np.clip(picked, 0, n_in - 1).astype(np.int64)


def resize_nearest(tracer, v, scales, sizes, transform: str, rounding: str, where: str):
    """Nearest-neighbour resizing of ``v`` to ``sizes`` (or by ``scales``), an index map on each axis."""
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
    picks = [nearest_indices(n, m, float(s), transform, rounding) for n, m, s in zip(shape, out_shape, scales)]

    def fn(t):
        for axis, index in enumerate(picks):
            t = np.take(t, index, axis=axis + 1)
        return t

    if not traced(v):
        return fn(np.asarray(v)[None])[0]
    return _selected(tracer, v, out_shape, fn, where)


def _mode(attrs, where: str) -> None:
    mode = _text(attrs, "mode", "nearest")
    if mode != "nearest":
        raise NetworkError(f"{where}: resizing mode {mode!r} is not supported (only 'nearest')")


@operator("Upsample", attributes=("mode", "scales"))
def op_upsample(tracer, inputs, attrs, where):
    _mode(attrs, where)
    v = need(inputs, 0, where)
    if len(inputs) > 1 and inputs[1] is not None:
        scales = [float(s) for s in np.ravel(const(inputs[1], where, "scales"))]
    else:
        scales = [float(s) for s in attrs["scales"]]
    return [resize_nearest(tracer, v, scales, None, "asymmetric", "simple", where)]


@operator("Resize", attributes=("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                                "exclude_outside", "extrapolation_value"))
def op_resize(tracer, inputs, attrs, where):
    _mode(attrs, where)
    v = need(inputs, 0, where)
    if tracer.opset < 11:
        scales = [float(s) for s in np.ravel(const(need(inputs, 1, where), where, "scales"))]
        return [resize_nearest(tracer, v, scales, None, "asymmetric", "simple", where)]
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
    return [resize_nearest(tracer, v, None if scales is None else [float(s) for s in scales], sizes, transform,
                           rounding, where)]
