"""Convolution and normalisation operators: Conv, ConvTranspose, BatchNormalization, Pad.

A convolution of a traced tensor is a :class:`reluverify.linear_ops.Conv` on the structured
form, or the same cross-correlation computed on every row of a dense table; a transposed
convolution is the transpose of the convolution with the same kernel over its output's shape
(:class:`reluverify.linear_ops.ConvTranspose`); batch normalisation (inference mode) is a
per-channel scale and shift; padding is an index map. :func:`window_geometry` (strides, pads,
dilations, ``auto_pad``, ``ceil_mode``) also serves the pooling operators.
"""

from __future__ import annotations

import math

import numpy as np

from reluverify import linear_ops as lo
from reluverify.errors import NetworkError
from reluverify.onnx_import.registry import LEGACY, const, need, operator
from reluverify.onnx_import.values import (
    MAX_TENSOR_ELEMENTS,
    Affine,
    add,
    apply_op,
    as_float,
    elements,
    multiply,
    shape_of,
    to_linear,
    traced,
)


def correlate(x: np.ndarray, w: np.ndarray, strides, pads, dilations, group: int) -> np.ndarray:
    """Cross-correlation of x (B, C, *spatial) with w (M, C/group, *kernel); no bias."""
    nd = w.ndim - 2
    pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
    x = np.pad(x, pad_width)
    kernel = w.shape[2:]
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    windows = np.lib.stride_tricks.sliding_window_view(x, eff, axis=tuple(range(2, 2 + nd)))
    # windows: (B, C, *out_full, *eff); apply stride and dilation
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + tuple(
        slice(None, None, d) for d in dilations
    )
    windows = windows[index]  # (B, C, *out, *kernel)
    b, c = x.shape[:2]
    m = w.shape[0]
    cg, mg = c // group, m // group
    outs = []
    letters = "abcdefgh"[:nd]
    kletters = "pqrstuvw"[:nd]
    for g in range(group):
        win = windows[:, g * cg : (g + 1) * cg]
        wg = w[g * mg : (g + 1) * mg]
        expr = f"zc{letters}{kletters},mc{kletters}->zm{letters}"
        outs.append(np.einsum(expr, win, wg, optimize=True))
    return np.concatenate(outs, axis=1)


def window_geometry(shape, kernel, attrs, where, pool: bool = False):
    """Strides, pads (ONNX order, with ``ceil_mode``'s extra end padding) and dilations of a window operator."""
    nd = len(kernel)
    spatial = list(shape[2:])
    if len(spatial) != nd:
        raise NetworkError(f"{where}: input of rank {len(shape)} for a {nd}-D window")
    strides = [int(v) for v in attrs.get("strides", [1] * nd)]
    dilations = [int(v) for v in attrs.get("dilations", [1] * nd)]
    if len(strides) != nd or len(dilations) != nd or min(strides + dilations, default=1) < 1:
        raise NetworkError(f"{where}: bad strides or dilations")
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode(errors="replace") if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(d != 1 for d in dilations):
            # onnxruntime refuses it for Conv and pads differently from the ONNX specification for pools
            raise NetworkError(f"{where}: auto_pad {auto_pad} with dilations {dilations} is not supported")
        begin, end_ = [], []
        for i in range(nd):
            out = math.ceil(spatial[i] / strides[i])
            need_ = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i])
            small, large = need_ // 2, need_ - need_ // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end_.append(large if auto_pad == "SAME_UPPER" else small)
        pads = begin + end_
    elif auto_pad == "VALID":
        pads = [0] * (2 * nd)
    elif auto_pad in ("NOTSET", ""):
        pads = [int(v) for v in attrs.get("pads", [0] * (2 * nd))]
    else:
        raise NetworkError(f"{where}: auto_pad {auto_pad!r} is not supported")
    if len(pads) != 2 * nd or min(pads, default=0) < 0:
        raise NetworkError(f"{where}: bad pads {pads}")
    extra = [0] * nd
    if pool and int(attrs.get("ceil_mode", 0)):
        for i in range(nd):
            eff = (kernel[i] - 1) * dilations[i] + 1
            span = spatial[i] + pads[i] + pads[i + nd] - eff
            if span < 0:
                break
            out = -(-span // strides[i]) + 1
            if (out - 1) * strides[i] >= spatial[i] + pads[i]:  # the last window would start in the end padding
                out -= 1
            extra[i] = max(0, (out - 1) * strides[i] + eff - (spatial[i] + pads[i] + pads[i + nd]))
    return strides, pads, dilations, extra


@operator("Conv", attributes=("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"))
def op_conv(tracer, inputs, attrs, where):
    x = need(inputs, 0, where)
    w = as_float(const(inputs[1], where, "the weight"))
    bias = as_float(const(inputs[2], where, "the bias")) if len(inputs) > 2 and inputs[2] is not None else None
    nd = w.ndim - 2
    shape = shape_of(x)
    if nd < 1 or len(shape) != nd + 2:
        raise NetworkError(f"{where}: input of rank {len(shape)} for a {nd}-D convolution")
    group = int(attrs.get("group", 1))
    if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != list(w.shape[2:]):
        raise NetworkError(f"{where}: kernel_shape {list(attrs['kernel_shape'])} differs from the weights' "
                           f"{list(w.shape[2:])}")
    strides, pads, dilations, _ = window_geometry(shape, list(w.shape[2:]), attrs, where)
    if group < 1:
        raise NetworkError(f"{where}: bad strides, dilations, pads or group")
    if shape[1] != w.shape[1] * group:
        raise NetworkError(f"{where}: input has {shape[1]} channels, weights expect {w.shape[1] * group}")
    if bias is not None and bias.size != w.shape[0]:
        raise NetworkError(f"{where}: the bias has {bias.size} values for {w.shape[0]} output channels")
    if not traced(x):
        out = correlate(as_float(x), w, strides, pads, dilations, group)
    else:
        op = lo.Conv(w, shape[1:], strides, pads, dilations, group)
        if tracer.structured(x, shape[0] * op.shape[0], where):
            out = to_linear(x).map(lo.repeat(op, shape[0]), (shape[0],) + op.out_shape)
        else:  # the same cross-correlation on every row of the table
            rows = x.table.shape[0]
            table = correlate(x.table.reshape((rows * shape[0],) + shape[1:]), w, strides, pads, dilations, group)
            out = Affine(x.sources, table.reshape((rows, shape[0]) + table.shape[1:]))
    if bias is not None:
        out = add(tracer, out, bias.reshape((-1,) + (1,) * nd), where)
    return [out]


def _transpose_pads(attrs, where, spatial, kernel, strides, dilations, extra) -> list[int]:
    """ConvTranspose's pads: given, or from ``output_shape`` / ``auto_pad`` as the ONNX specification derives them."""
    nd = len(kernel)
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode(errors="replace") if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise NetworkError(f"{where}: auto_pad {auto_pad!r} is not supported")
    if "output_shape" in attrs:
        target = [int(v) for v in attrs["output_shape"]][-nd:]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = [spatial[i] * strides[i] for i in range(nd)]
    else:
        pads = [0] * (2 * nd) if auto_pad == "VALID" else [int(v) for v in attrs.get("pads", [0] * (2 * nd))]
        if len(pads) != 2 * nd or min(pads, default=0) < 0:
            raise NetworkError(f"{where}: bad pads {pads}")
        return pads
    if len(target) != nd:
        raise NetworkError(f"{where}: output_shape {list(attrs['output_shape'])} does not fit a {nd}-D convolution")
    total = [strides[i] * (spatial[i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1 - target[i]
             for i in range(nd)]
    if min(total) < 0:
        raise NetworkError(f"{where}: output_shape {target} is larger than the transposed convolution gives")
    if auto_pad == "SAME_UPPER":
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    return [t - t // 2 for t in total] + [t // 2 for t in total]


@operator("ConvTranspose", attributes=("auto_pad", "dilations", "group", "kernel_shape", "output_padding",
                                       "output_shape", "pads", "strides"))
def op_convtranspose(tracer, inputs, attrs, where):
    """ConvTranspose as the transpose of the Conv with the same kernel, strides, pads, dilations and group,
    over the output's shape (a :class:`reluverify.linear_ops.ConvTranspose`)."""
    x = need(inputs, 0, where)
    w = as_float(const(inputs[1], where, "the weight"))
    bias = as_float(const(inputs[2], where, "the bias")) if len(inputs) > 2 and inputs[2] is not None else None
    nd, shape = w.ndim - 2, shape_of(x)
    if nd not in (1, 2) or len(shape) != nd + 2:
        raise NetworkError(f"{where}: input of rank {len(shape)} for a {nd}-D transposed convolution "
                           "(1-D and 2-D are supported)")
    group, kernel = int(attrs.get("group", 1)), list(w.shape[2:])
    if "kernel_shape" in attrs and [int(k) for k in attrs["kernel_shape"]] != kernel:
        raise NetworkError(f"{where}: kernel_shape {list(attrs['kernel_shape'])} differs from the weights' {kernel}")
    strides = [int(v) for v in attrs.get("strides", [1] * nd)]
    dilations = [int(v) for v in attrs.get("dilations", [1] * nd)]
    extra = [int(v) for v in attrs.get("output_padding", [0] * nd)]
    if len(strides) != nd or len(dilations) != nd or len(extra) != nd or min(strides + dilations) < 1 or group < 1:
        raise NetworkError(f"{where}: bad strides, dilations, output_padding or group")
    if any(not 0 <= e < max(s, d) for e, s, d in zip(extra, strides, dilations)):
        raise NetworkError(f"{where}: output_padding {extra} must be below the strides or dilations")
    if shape[1] != w.shape[0] or w.shape[0] % group:
        raise NetworkError(f"{where}: input has {shape[1]} channels, the weights expect {w.shape[0]} in {group} groups")
    pads = _transpose_pads(attrs, where, shape[2:], kernel, strides, dilations, extra)
    out_spatial = [strides[i] * (shape[2 + i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1 - pads[i]
                   - pads[i + nd] for i in range(nd)]
    channels = w.shape[1] * group
    if bias is not None and bias.size != channels:
        raise NetworkError(f"{where}: the bias has {bias.size} values for {channels} output channels")
    conv = lo.Conv(w, (channels,) + tuple(out_spatial), strides, pads, dilations, group)
    if tuple(conv.out_shape) != tuple(shape[1:]):
        raise NetworkError(f"{where}: output_padding {extra} with strides {strides} does not fit the input")
    op = lo.ConvTranspose(conv)
    out_shape = (shape[0], channels) + tuple(out_spatial)
    if not traced(x):
        out = lo.forward(lo.repeat(op, shape[0]), as_float(x).reshape(1, -1)).reshape(out_shape)
    else:
        out = apply_op(tracer, x, lo.repeat(op, shape[0]), out_shape, where)
    if bias is not None:
        out = add(tracer, out, bias.reshape((-1,) + (1,) * nd), where)
    return [out]


@operator("BatchNormalization", attributes=("epsilon", "momentum", "training_mode", "spatial", "is_test", *LEGACY))
def op_batchnorm(tracer, inputs, attrs, where):
    x = need(inputs, 0, where)
    scale, bias, mean, var = (as_float(const(inputs[i], where, name)) for i, name in
                              zip(range(1, 5), ("scale", "B", "mean", "var")))
    if int(attrs.get("training_mode", 0)) != 0:
        raise NetworkError(f"{where}: training mode (batch statistics) is not supported")
    if int(attrs.get("spatial", 1)) != 1:
        raise NetworkError(f"{where}: spatial=0 (per-element statistics) is not supported")
    eps = float(attrs.get("epsilon", 1e-5))
    factor = scale / np.sqrt(var + eps)
    shift = bias - mean * factor
    rank = len(shape_of(x))
    bshape = (-1,) + (1,) * (rank - 2) if rank >= 2 else (-1,)
    out = multiply(tracer, x, factor.reshape(bshape), where)
    return [add(tracer, out, shift.reshape(bshape), where)]


def _pads_arg(inputs, attrs, where, rank: int) -> list[tuple[int, int]]:
    if len(inputs) > 1 and inputs[1] is not None:
        pads = [int(p) for p in const(inputs[1], where, "pads").ravel()]
    else:
        pads = [int(p) for p in attrs.get("pads", [])]
    axes = list(range(rank))
    if len(inputs) > 3 and inputs[3] is not None:
        axes = [int(a) + rank if int(a) < 0 else int(a) for a in const(inputs[3], where, "axes").ravel()]
    if len(pads) != 2 * len(axes) or any(not 0 <= a < rank for a in axes):
        raise NetworkError(f"{where}: {len(pads)} pads for {len(axes)} axes of a rank-{rank} tensor")
    width = [(0, 0)] * rank
    for k, a in enumerate(axes):
        width[a] = (pads[k], pads[k + len(axes)])
    return width


@operator("Pad", attributes=("mode", "pads", "value"))
def op_pad(tracer, inputs, attrs, where):
    """Pad as an index map (``constant``: the value at new places; ``reflect``, ``edge``, ``wrap``: copies)."""
    x = need(inputs, 0, where)
    shape = shape_of(x)
    mode = attrs.get("mode", b"constant")
    mode = mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode)
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise NetworkError(f"{where}: pad mode {mode!r} is not supported")
    width = _pads_arg(inputs, attrs, where, len(shape))
    if len(inputs) > 2 and inputs[2] is not None and np.size(const(inputs[2], where, "constant_value")):
        fill = float(np.ravel(as_float(const(inputs[2], where, "constant_value")))[0])
    else:
        fill = float(attrs.get("value", 0.0))
    # negative pads crop first
    crop = tuple(slice(max(0, -b), d - max(0, -e)) for (b, e), d in zip(width, shape))
    grow = [(max(0, b), max(0, e)) for b, e in width]
    cropped = [c.stop - c.start for c in crop]
    if min(cropped, default=1) < 0:
        raise NetworkError(f"{where}: the pads crop more than the tensor holds")
    if mode != "constant" and any(b or e for b, e in grow) and min(cropped, default=1) < 1:
        raise NetworkError(f"{where}: {mode} padding of an empty axis")
    if mode == "reflect" and any((b > c - 1 or e > c - 1) for (b, e), c in zip(grow, cropped) if b or e):
        raise NetworkError(f"{where}: reflect pads larger than the axis")
    size = elements(shape)
    index = np.arange(size).reshape(shape)[crop]
    index = np.pad(index, grow, mode=mode, constant_values=-1) if mode == "constant" else np.pad(index, grow, mode=mode)
    if index.size > MAX_TENSOR_ELEMENTS:
        raise NetworkError(f"{where}: the padded tensor would be too large ({index.size} elements)")
    if not traced(x):
        flat = as_float(x).ravel()
        out = np.where(index >= 0, flat[np.maximum(index, 0)], fill)
        return [out.astype(np.asarray(x).dtype) if np.asarray(x).dtype.kind == "f" else out]
    out = apply_op(tracer, x, lo.IndexMap(index.ravel(), size), index.shape, where)
    if fill != 0.0 and mode == "constant":
        out = add(tracer, out, (index < 0).astype(np.float64) * fill, where)
    return [out]
