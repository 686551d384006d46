"""The regularised softmax of the ND-Adam paper (Zhang et al. 2017, Section 4).

With weight vectors on the unit sphere, the only thing left that can grow without
bound is the magnitude of the logits, and cross-entropy rewards growing it; the
paper bounds it in one of two ways, both offered here as a training option:

* ``logit-l2``: add ``lambda / 2 * mean_batch ||z||^2`` to the cross-entropy, ``z`` the
  logits;
* ``bn``: batch-normalised softmax: the logits pass through batch normalisation
  without learned affine parameters and are multiplied by a fixed scale ``gamma``
  (the paper uses 2.5 on CIFAR-10). At inference the normalisation uses running
  statistics, so it is an affine map per class that export folds into the output
  layer (:meth:`LogitBatchNorm.folded`).

``none`` is plain cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

KINDS = ("none", "logit-l2", "bn")


@dataclass(frozen=True)
class SoftmaxRegularisation:
    """How the softmax is regularised; ``logit_l2`` is used by ``logit-l2``, ``bn_scale`` by ``bn``."""

    kind: str = "logit-l2"
    logit_l2: float = 1e-3
    bn_scale: float = 2.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"softmax regularisation must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.logit_l2 < 0 or self.bn_scale <= 0:
            raise ValueError("logit_l2 must be >= 0 and bn_scale > 0")

    @property
    def logit_bn_scale(self) -> float | None:
        """The scale of the model's logit batch normalisation, or None when there is none."""
        return self.bn_scale if self.kind == "bn" else None

    def describe(self) -> dict:
        if self.kind == "logit-l2":
            return {"kind": self.kind, "lambda": self.logit_l2}
        if self.kind == "bn":
            return {"kind": self.kind, "gamma": self.bn_scale}
        return {"kind": self.kind}


def regularised_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reg: SoftmaxRegularisation) -> torch.Tensor:
    """Mean cross-entropy plus the logit penalty of ``reg`` (the ``bn`` kind lives in the model)."""
    loss = F.cross_entropy(logits, targets)
    if reg.kind == "logit-l2" and reg.logit_l2 > 0:
        loss = loss + 0.5 * reg.logit_l2 * (logits * logits).sum(dim=1).mean()
    return loss


class LogitBatchNorm(nn.Module):
    """``gamma * BN(z)``: batch normalisation of the logits with no learned affine parameters."""

    def __init__(self, classes: int, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.norm = nn.BatchNorm1d(classes, affine=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * self.norm(z)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, c)`` with ``forward(z) == a * z + c`` in eval mode (running statistics)."""
        a = self.scale / torch.sqrt(self.norm.running_var + self.norm.eps)
        return a, -a * self.norm.running_mean
