"""The Simple Recurrent Unit (Lei, Zhang, Wang, Dai, Artzi, "Simple Recurrent Units for
Highly Parallelizable Recurrence", EMNLP 2018), one layer, batch first.

For inputs ``x_t`` (``input_size``) and states ``c_t`` (``hidden_size``, ``c_0 = 0``)::

    f_t = sigmoid(W_f x_t + v_f * c_{t-1} + b_f)           # forget gate
    c_t = f_t * c_{t-1} + (1 - f_t) * (W x_t)              # light recurrence
    r_t = sigmoid(W_r x_t + v_r * c_{t-1} + b_r)           # highway (reset) gate
    h_t = r_t * c_t + (1 - r_t) * alpha * x_t              # highway connection

``*`` is elementwise, so every state dimension is independent and the only
sequential work is elementwise. The matrix products of all time steps are done at
once: ``U = x @ [W; W_f; W_r]^T`` is one multiplication over ``(batch, time)``. When
``input_size != hidden_size`` the highway needs ``x_t`` in the hidden size, and a fourth
matrix ``W_h`` (stacked in the same product) gives ``alpha * W_h x_t`` instead.

The code evaluates the two mixes as ``c_t = X_t + f_t * (c_{t-1} - X_t)`` and
``h_t = H_t + r_t * (c_t - H_t)`` (``X_t = W x_t``, ``H_t = alpha x_t``): the same numbers
with one elementwise product each instead of two, which matters to a verifier that
must treat every product of two variables as a nonlinearity.

Initialisation (the paper's Section 3.2 and its reference implementation): every
input matrix has zero mean and variance ``1/input_size`` (uniform in
``+-sqrt(3/input_size)``); the gate rows ``W_f, W_r`` and the vectors ``v_f, v_r``
(variance 1) are scaled by ``sqrt(1/2)`` so a gate's pre-activation keeps variance 1;
``b_f = 0`` and ``b_r = highway_bias``. The scaling correction
``alpha = sqrt(1 + 2 exp(highway_bias))`` (``sqrt(3)`` for bias 0) keeps the variance of
``h_t`` equal to that of ``x_t``, so stacked layers neither shrink nor blow up the signal.
With ``rescale=False``, ``alpha = 1``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SRU(nn.Module):
    """One SRU layer: ``(batch, time, input_size) -> (h: (batch, time, hidden_size), c_T: (batch, hidden_size))``."""

    def __init__(self, input_size: int, hidden_size: int, highway_bias: float = 0.0, rescale: bool = True) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError("SRU sizes must be positive")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.projected_highway = input_size != hidden_size
        self.matrices = 4 if self.projected_highway else 3
        self.highway_bias = float(highway_bias)
        self.alpha = math.sqrt(1.0 + 2.0 * math.exp(self.highway_bias)) if rescale else 1.0
        # rows: [W; W_f; W_r] (+ [W_h] when the highway needs a projection)
        self.weight = nn.Parameter(torch.empty(self.matrices * hidden_size, input_size))
        self.v = nn.Parameter(torch.empty(2, hidden_size))  # v_f, v_r
        self.bias = nn.Parameter(torch.empty(2, hidden_size))  # b_f, b_r
        self.reset_parameters()

    def reset_parameters(self) -> None:
        n = self.hidden_size
        with torch.no_grad():
            bound = math.sqrt(3.0 / self.input_size)
            self.weight.uniform_(-bound, bound)
            self.weight[n : 3 * n].mul_(math.sqrt(0.5))
            self.v.uniform_(-math.sqrt(3.0), math.sqrt(3.0)).mul_(math.sqrt(0.5))
            self.bias.zero_()
            self.bias[1].fill_(self.highway_bias)

    def forward(self, x: torch.Tensor, c0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"expected (batch, time, {self.input_size}), got {tuple(x.shape)}")
        n = self.hidden_size
        u = x @ self.weight.T  # every time step in one product: (batch, time, matrices * n)
        parts = u.split(n, dim=-1)
        x_tilde, f_pre, r_pre = parts[0], parts[1] + self.bias[0], parts[2] + self.bias[1]
        highway = self.alpha * (parts[3] if self.projected_highway else x)
        c = x.new_zeros(x.shape[0], n) if c0 is None else c0
        v_f, v_r = self.v[0], self.v[1]
        hs = []
        for t in range(x.shape[1]):
            f = torch.sigmoid(f_pre[:, t] + v_f * c)
            r = torch.sigmoid(r_pre[:, t] + v_r * c)  # reads c_{t-1}, as f does
            c = x_tilde[:, t] + f * (c - x_tilde[:, t])
            hs.append(highway[:, t] + r * (c - highway[:, t]))
        return torch.stack(hs, dim=1), c
