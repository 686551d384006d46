"""The trainable networks: a ReLU MLP and an SRU sequence classifier.

Both expose the same small protocol, which the trainer and the exporter rely on:

* ``logits(x)`` -- what the loss sees (higher = more likely), for flat inputs
  ``(batch, input_size)``;
* ``forward(x)`` -- what the exported ONNX computes: the logits, or for
  ``costs=True`` (ACAS Xu's convention) their negation, so the decision is the
  minimal score;
* ``sphere_parameters()`` -- the weight matrices whose rows ND-Adam keeps on the unit
  sphere; everything else is trained by plain Adam;
* ``describe()`` -- the architecture, for the model card.

An optional :class:`~reluverify.train.regularised_softmax.LogitBatchNorm` (the
paper's batch-normalised softmax) sits after the output layer; in eval mode it is
an affine map that export folds into the output layer.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from reluverify.train.regularised_softmax import LogitBatchNorm
from reluverify.train.sru import SRU


class _Head(nn.Module):
    """Output layer + optional logit batch norm + the score convention (logits or costs)."""

    def __init__(self, in_features: int, classes: int, logit_bn_scale: float | None, costs: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)
        self.logit_norm = LogitBatchNorm(classes, logit_bn_scale) if logit_bn_scale is not None else None
        self.costs = costs

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        z = self.linear(h)
        return self.logit_norm(z) if self.logit_norm is not None else z

    def exported_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W, b)`` with ``h @ W.T + b`` equal to the eval-mode output scores."""
        w, b = self.linear.weight.detach().double(), self.linear.bias.detach().double()
        if self.logit_norm is not None:
            a, c = (t.detach().double() for t in self.logit_norm.folded())
            w, b = a[:, None] * w, a * b + c
        if self.costs:
            w, b = -w, -b
        return w, b


class ReluMLP(nn.Module):
    """``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with a ReLU after every layer but the last."""

    def __init__(self, sizes: Sequence[int], logit_bn_scale: float | None = None, costs: bool = False) -> None:
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
        self.sizes = sizes
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-2], sizes[1:-1]))
        self.head = _Head(sizes[-2], sizes[-1], logit_bn_scale, costs)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.sizes[0])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.head.logits(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logits(x)
        return -z if self.head.costs else z

    def sphere_parameters(self) -> list[nn.Parameter]:
        """Hidden layers' weights: each row feeds one ReLU, whose scale the next layer absorbs."""
        return [layer.weight for layer in self.hidden]

    def affine_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer as float64 ``(W, b)``, the last with logit norm and sign folded in (eval mode)."""
        layers = [(l.weight.detach().double(), l.bias.detach().double()) for l in self.hidden]
        return layers + [self.head.exported_affine()]

    def describe(self) -> dict:
        return {
            "kind": "relu-mlp",
            "shape": " -> ".join(map(str, self.sizes)),
            "layers": list(self.sizes),
            "relus": sum(self.sizes[1:-1]),
            "input_shape": list(self.input_shape),
            "output": "costs: the decision is the minimal score" if self.head.costs else "logits: the class is the maximal score",
            "logit_batch_norm": self.head.logit_norm.scale if self.head.logit_norm is not None else None,
        }


class SRUClassifier(nn.Module):
    """Reads a flat input as ``steps`` rows of ``features`` values; an SRU layer, then a linear head on ``h_T``."""

    def __init__(
        self,
        steps: int,
        features: int,
        hidden: int,
        classes: int,
        highway_bias: float = 0.0,
        logit_bn_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.steps, self.features = int(steps), int(features)
        self.sru = SRU(features, hidden, highway_bias=highway_bias)
        self.head = _Head(hidden, classes, logit_bn_scale, costs=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.steps, self.features)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.sru(x.reshape(-1, self.steps, self.features))
        return self.head.logits(h[:, -1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def sphere_parameters(self) -> list[nn.Parameter]:
        """None: sigmoid gates and the highway term are not scale-invariant, so unit-norm
        rows would change what the SRU can compute; under ND-Adam it trains with Adam."""
        return []

    def describe(self) -> dict:
        sru = self.sru
        classes = self.head.linear.out_features
        return {
            "kind": "sru-classifier",
            "shape": f"SRU({self.features} -> {sru.hidden_size}) x {self.steps} steps -> {classes}",
            "steps": self.steps,
            "features": self.features,
            "hidden": sru.hidden_size,
            "classes": classes,
            "highway": "projected (W_h x_t)" if sru.projected_highway else "identity (x_t)",
            "highway_bias": sru.highway_bias,
            "alpha": sru.alpha,
            "input_shape": list(self.input_shape),
            "output": "logits of h_T: the class is the maximal score",
            "logit_batch_norm": self.head.logit_norm.scale if self.head.logit_norm is not None else None,
        }
