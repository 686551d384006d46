"""Convolution as an operator: :class:`Conv`, 1-D and 2-D cross-correlation, and :class:`ConvTranspose`.

Strides, asymmetric pads, dilations and groups, as ONNX's Conv (average pooling is a Conv with
a fixed kernel). The 1-D case runs as a 2-D one of height 1. ``forward`` works on im2col
windows in chunks of about ``_WORK`` entries; ``backward`` (the transposed convolution) adds
one matrix product per kernel offset; ``rows`` writes the kernel into each row directly.

Invariant: the operator's only parameter is its kernel (backward caches a transposed copy);
its output is (M, *out_spatial) flattened in C order; the bias stays in the affine node.
"""

from __future__ import annotations

import math

import numpy as np

from reluverify.errors import NetworkError
from reluverify.linear_ops.base import _WORK, LinearOp, _as_batch, _readonly

class Conv(LinearOp):
    """Cross-correlation of an input of shape (C, H, W) or (C, L) with ``kernel`` (M, C/groups, *k).

    ``pads`` is ONNX's ``[begin..., end...]`` (zero padding); no bias (biases stay in the
    affine node). The output has shape (M, *out_spatial), flattened in C order.
    """

    def __init__(self, kernel, in_shape, strides=None, pads=None, dilations=None, groups: int = 1) -> None:
        kernel = np.asarray(kernel, dtype=np.float64)
        nd = kernel.ndim - 2
        if nd not in (1, 2):
            raise NetworkError(f"only 1-D and 2-D convolutions are supported, not {nd}-D")
        in_shape = tuple(int(d) for d in in_shape)
        strides = [1] * nd if strides is None else [int(s) for s in strides]
        dilations = [1] * nd if dilations is None else [int(d) for d in dilations]
        pads = [0] * (2 * nd) if pads is None else [int(p) for p in pads]
        groups = int(groups)
        if len(in_shape) != nd + 1 or len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd:
            raise NetworkError("convolution: input shape, strides, dilations and pads do not match the kernel's rank")
        if min(strides + dilations) < 1 or min(pads) < 0 or groups < 1:
            raise NetworkError("convolution: strides and dilations must be positive, pads non-negative")
        m, cg = kernel.shape[:2]
        if m % groups or in_shape[0] != cg * groups:
            raise NetworkError(
                f"convolution: {in_shape[0]} input channels and {m} output channels do not fit "
                f"{groups} groups of a kernel with {cg} input channels"
            )
        out_spatial = []
        for i in range(nd):
            eff = (kernel.shape[2 + i] - 1) * dilations[i] + 1
            span = in_shape[1 + i] + pads[i] + pads[i + nd] - eff
            if span < 0:
                raise NetworkError("convolution: the kernel is larger than the padded input")
            out_spatial.append(span // strides[i] + 1)
        self.kernel = _readonly(kernel)
        self.in_shape = in_shape
        self.strides = tuple(strides)
        self.pads = tuple(pads)
        self.dilations = tuple(dilations)
        self.groups = groups
        self.nd = nd
        self.out_shape = (m,) + tuple(out_spatial)
        # 2-D view of the geometry (a 1-D convolution has H = 1)
        if nd == 1:
            self._k2 = kernel.reshape(m, cg, 1, kernel.shape[2])
            self._in2 = (in_shape[0], 1, in_shape[1])
            self._s2, self._d2 = (1, strides[0]), (1, dilations[0])
            self._p2 = (0, 0, pads[0], pads[1])  # top, bottom, left, right
            self._out2 = (m, 1, out_spatial[0])
        else:
            self._k2 = self.kernel
            self._in2 = in_shape
            self._s2, self._d2 = tuple(strides), tuple(dilations)
            self._p2 = (pads[0], pads[2], pads[1], pads[3])  # top, bottom, left, right
            self._out2 = self.out_shape
        self._kt = None

    def __reduce__(self):
        return (Conv, (np.array(self.kernel), self.in_shape, self.strides, self.pads, self.dilations, self.groups))

    @property
    def shape(self):
        return (math.prod(self.out_shape), math.prod(self.in_shape))

    @property
    def parameter_count(self) -> int:
        return int(self.kernel.size)

    def with_kernel(self, kernel) -> "Conv":
        return Conv(kernel, self.in_shape, self.strides, self.pads, self.dilations, self.groups)

    def _windows(self, xp: np.ndarray) -> np.ndarray:
        kh, kw = self._k2.shape[2:]
        (sh, sw), (dh, dw) = self._s2, self._d2
        eff = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
        win = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=(2, 3))
        _, oh, ow = self._out2
        return win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]  # (N, C, OH, OW, KH, KW)

    def _kernel_rows(self) -> np.ndarray:
        """The kernel as (M, KH KW Cg): each offset's (M, Cg) block contiguous in Cg (cached)."""
        if self._kt is None:
            m = self._k2.shape[0]
            object.__setattr__(self, "_kt", np.ascontiguousarray(self._k2.transpose(0, 2, 3, 1)).reshape(m, -1))
        return self._kt

    def _offsets(self):
        """Per kernel offset (i, j): the slices of the padded input (H and W) that its outputs read."""
        kh, kw = self._k2.shape[2:]
        (sh, sw), (dh, dw) = self._s2, self._d2
        _, oh, ow = self._out2
        for i in range(kh):
            for j in range(kw):
                yield i, j, slice(i * dh, i * dh + (oh - 1) * sh + 1, sh), slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)

    def forward(self, x):
        x = _as_batch(x, self.shape[1], "Conv.forward")
        n = x.shape[0]
        c, h, w = self._in2
        m, oh, ow = self._out2
        g = self.groups
        kh, kw = self._k2.shape[2:]
        pt, pb, pl, pr = self._p2
        out = np.empty((n, m, oh, ow))
        if g == 1:
            # channels last: the padded input, its im2col windows (one strided copy per kernel offset) and
            # one matrix product, in batches whose temporaries stay near _WORK entries
            kt = self._kernel_rows()
            hp, wp = h + pt + pb, w + pl + pr
            step = max(1, _WORK // max(1, c * (oh * ow * kh * kw + hp * wp) + m * oh * ow))
            for start in range(0, n, step):
                xs = x[start : start + step].reshape(-1, c, h, w).transpose(0, 2, 3, 1)
                nb = xs.shape[0]
                if any(self._p2):
                    xp = np.zeros((nb, hp, wp, c))
                    xp[:, pt : pt + h, pl : pl + w, :] = xs
                else:
                    xp = xs
                cols = np.empty((nb, oh, ow, kh, kw, c))
                for i, j, rows_, cols_ in self._offsets():
                    cols[:, :, :, i, j, :] = xp[:, rows_, cols_, :]
                part = cols.reshape(nb * oh * ow, -1) @ kt.T  # (nb oh ow, M)
                out[start : start + nb] = part.reshape(nb, oh, ow, m).transpose(0, 3, 1, 2)
            return out.reshape(n, -1)
        per_sample = max(1, c * oh * ow * kh * kw)
        step = max(1, _WORK // per_sample)
        for start in range(0, n, step):
            xs = x[start : start + step].reshape(-1, c, h, w)
            if any(self._p2):
                xs = np.pad(xs, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
            win = self._windows(xs)
            cg, mg = c // g, m // g
            win = win.reshape(win.shape[0], g, cg, oh, ow, kh, kw)
            kern = self._k2.reshape(g, mg, cg, kh, kw)
            part = np.einsum("ngchwij,gmcij->ngmhw", win, kern, optimize=True)
            out[start : start + step] = part.reshape(part.shape[0], m, oh, ow)
        return out.reshape(n, -1)

    def backward(self, cvec):
        cvec = _as_batch(cvec, self.shape[0], "Conv.backward")
        n = cvec.shape[0]
        c, h, w = self._in2
        m, oh, ow = self._out2
        g = self.groups
        kh, kw = self._k2.shape[2:]
        pt, pb, pl, pr = self._p2
        co = cvec.reshape(n, m, oh, ow)
        hp, wp = h + pt + pb, w + pl + pr
        if g == 1:
            # channels last: one matrix product for every kernel offset (col2im), then kh * kw strided adds,
            # in batches whose temporaries stay near _WORK entries
            kt = self._kernel_rows()
            out = np.empty((n, c, h, w))
            step = max(1, _WORK // max(1, c * (oh * ow * kh * kw + hp * wp) + m * oh * ow))
            for start in range(0, n, step):
                part = co[start : start + step]
                nb = part.shape[0]
                rows = np.ascontiguousarray(part.transpose(0, 2, 3, 1)).reshape(-1, m)  # (nb oh ow, M)
                cols = (rows @ kt).reshape(nb, oh, ow, kh, kw, c)
                grad = np.zeros((nb, hp, wp, c))
                for i, j, rows_, cols_ in self._offsets():
                    grad[:, rows_, cols_, :] += cols[:, :, :, i, j, :]
                out[start : start + nb] = grad[:, pt : pt + h, pl : pl + w, :].transpose(0, 3, 1, 2)
            return out.reshape(n, -1)
        grad = np.zeros((n, c, hp, wp))
        cg, mg = c // g, m // g
        cog = co.reshape(n, g, mg, oh, ow)
        kern = self._k2.reshape(g, mg, cg, kh, kw)
        for i, j, rows_, cols_ in self._offsets():
            part = np.einsum("ngmhw,gmc->ngchw", cog, kern[:, :, :, i, j]).reshape(n, c, oh, ow)
            grad[:, :, rows_, cols_] += part
        return grad[:, :, pt : pt + h, pl : pl + w].reshape(n, -1)

    def rows(self, index):
        """The rows, written directly: output (m, oh, ow) reads kernel[m, :, i, j] at its window's inputs."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        m, oh, ow = np.unravel_index(index, self._out2)
        big_m, cg, kh, kw = self._k2.shape
        c, h, w = self._in2
        (sh, sw), (dh, dw) = self._s2, self._d2
        pt, _, pl, _ = self._p2
        channel = (m // (big_m // self.groups))[:, None] * cg + np.arange(cg)[None, :]  # (n, Cg)
        hh = oh[:, None] * sh - pt + np.arange(kh)[None, :] * dh  # (n, KH)
        ww = ow[:, None] * sw - pl + np.arange(kw)[None, :] * dw  # (n, KW)
        inside = ((hh >= 0) & (hh < h))[:, None, :, None] & ((ww >= 0) & (ww < w))[:, None, None, :]
        inside = np.broadcast_to(inside, (index.size, cg, kh, kw))
        cols = (channel[:, :, None, None] * h + hh[:, None, :, None]) * w + ww[:, None, None, :]
        which = np.broadcast_to(np.arange(index.size)[:, None, None, None], inside.shape)
        out = np.zeros((index.size, self.shape[1]))
        out[which[inside], cols[inside]] = self._k2[m][inside]
        return out

    def absolute(self):
        return self.with_kernel(np.abs(self.kernel))

    def scaled(self, alpha):
        return self.with_kernel(self.kernel * float(alpha))

    def parameters(self):
        return (self.kernel,)

    def signature(self):
        return f"Conv{self.in_shape}{self.kernel.shape}s{self.strides}p{self.pads}d{self.dilations}g{self.groups}"

    def describe(self):
        kernel = "x".join(str(k) for k in self.kernel.shape[2:])
        stride = "x".join(str(s) for s in self.strides) if len(set(self.strides)) > 1 else str(self.strides[0])
        group = f" groups {self.groups}" if self.groups > 1 else ""
        return f"conv {self.kernel.shape[0]}x{kernel}/{stride}{group}"

    def channel_scaled(self, out_scale=None, in_scale=None) -> "Conv":
        """The convolution followed by a per-output-channel scale / preceded by a per-input-channel one."""
        k = np.array(self.kernel)
        if out_scale is not None:
            k = k * np.asarray(out_scale, dtype=np.float64).reshape((-1,) + (1,) * (k.ndim - 1))
        if in_scale is not None:
            s = np.asarray(in_scale, dtype=np.float64).reshape(self.groups, -1)  # (G, Cg)
            mg = k.shape[0] // self.groups
            k = k * np.repeat(s, mg, axis=0).reshape(k.shape[:2] + (1,) * (k.ndim - 2))
        return self.with_kernel(k)


class ConvTranspose(LinearOp):
    """The transpose of a :class:`Conv`: ONNX's ConvTranspose without bias, from an input of the
    convolution's output shape to an output of its input shape.

    ``forward`` is the convolution's ``backward`` and ``backward`` its ``forward``; the kernel is the
    convolution's (ONNX's ConvTranspose weight (C_in, C_out/groups, *k) is that Conv's kernel as it
    stands). Output padding is the part of the convolution's input that no window reads.
    """

    def __init__(self, conv: Conv) -> None:
        self.conv = conv
        self.in_shape = conv.out_shape
        self.out_shape = conv.in_shape

    def __reduce__(self):
        return (ConvTranspose, (self.conv,))

    @property
    def shape(self):
        out_size, in_size = self.conv.shape
        return (in_size, out_size)

    @property
    def parameter_count(self) -> int:
        return self.conv.parameter_count

    def forward(self, x):
        return self.conv.backward(x)

    def backward(self, c):
        return self.conv.forward(c)

    def absolute(self):
        return ConvTranspose(self.conv.absolute())

    def scaled(self, alpha):
        return ConvTranspose(self.conv.scaled(alpha))

    def parameters(self):
        return self.conv.parameters()

    def signature(self):
        return f"ConvTranspose[{self.conv.signature()}]"

    def describe(self):
        return f"transposed {self.conv.describe()}"
