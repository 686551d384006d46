"""The three optimizers ``reluverify train`` offers, with their documented defaults.

=========  ====================================================================
nd-adam    :class:`~reluverify.train.nd_adam.NDAdam`: the model's sphere
           parameters (hidden-unit weight vectors) at ``lr_sphere`` (the paper's
           ``alpha^v``), every other parameter by Adam at ``lr``
adam       ``torch.optim.Adam`` on every parameter at ``lr``
sgd        ``torch.optim.SGD`` with Nesterov momentum ``momentum`` at ``lr``
=========  ====================================================================

Default learning rates (:data:`DEFAULT_LR`) were chosen on the digits task; the step
on the sphere is relative (the vectors have norm 1), so ``lr_sphere`` is the angle,
in radians, that one step turns a weight vector by at most, about.
``weight_decay`` is an L2 term on the gradient (never on sphere parameters).
The trainer multiplies every group's rate by a cosine schedule over the epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reluverify.train.nd_adam import NDAdam

OPTIMIZERS = ("nd-adam", "adam", "sgd")
DEFAULT_LR = {"nd-adam": 0.01, "adam": 0.003, "sgd": 0.1}
DEFAULT_LR_SPHERE = 0.05


@dataclass(frozen=True)
class OptimizerOptions:
    """``lr=None`` means the optimizer's default from :data:`DEFAULT_LR`."""

    name: str = "nd-adam"
    lr: float | None = None
    lr_sphere: float = DEFAULT_LR_SPHERE
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.name!r}")
        if (self.lr is not None and self.lr <= 0) or self.lr_sphere <= 0:
            raise ValueError("learning rates must be positive")

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.name] if self.lr is None else self.lr

    def describe(self) -> dict:
        out = {"name": self.name, "lr": self.learning_rate, "weight_decay": self.weight_decay}
        if self.name == "nd-adam":
            out.update(lr_sphere=self.lr_sphere, betas=list(self.betas), eps=self.eps)
        elif self.name == "adam":
            out.update(betas=list(self.betas), eps=self.eps)
        else:
            out.update(momentum=self.momentum, nesterov=True)
        return out


def build_optimizer(model: torch.nn.Module, options: OptimizerOptions) -> torch.optim.Optimizer:
    """The optimizer of ``options`` over ``model``'s parameters (sphere groups from ``model.sphere_parameters()``)."""
    lr = options.learning_rate
    if options.name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, betas=options.betas, eps=options.eps, weight_decay=options.weight_decay)
    if options.name == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=options.momentum, nesterov=True, weight_decay=options.weight_decay
        )
    sphere = list(model.sphere_parameters())
    sphere_ids = {id(p) for p in sphere}
    others = [p for p in model.parameters() if id(p) not in sphere_ids]
    groups = [{"params": others, "sphere": False, "lr": lr, "weight_decay": options.weight_decay}]
    if sphere:
        groups.append({"params": sphere, "sphere": True, "lr": options.lr_sphere, "weight_decay": 0.0})
    return NDAdam(groups, lr=lr, betas=options.betas, eps=options.eps)
