"""ND-Adam: Normalized Direction-preserving Adam (Zhang, Ma, Li, Wu, 2017), Algorithm 1.

Parameters come in two kinds, chosen per parameter group:

* ``sphere=True`` groups hold 2-D weight matrices whose **rows** are the input weight
  vectors ``w_i`` of hidden units (an ``nn.Linear`` weight is ``(units, fan_in)``). For
  each vector, at step ``t``::

      g_t   = grad - (grad . w_{t-1}) w_{t-1}          # projection onto the tangent space
      m_t   = beta1 m_{t-1} + (1 - beta1) g_t          # a vector per weight vector
      v_t   = beta2 v_{t-1} + (1 - beta2) ||g_t||^2    # ONE scalar per weight vector
      w_bar = w_{t-1} - lr * m_hat_t / (sqrt(v_hat_t) + eps)
      w_t   = w_bar / ||w_bar||

  with the bias-corrected moments ``m_hat_t = m_t / (1 - beta1^t)`` and
  ``v_hat_t = v_t / (1 - beta2^t)``. The vectors are put on the unit sphere when the
  optimizer is built (Algorithm 1's initialisation).

* every other group is updated by plain Adam, in the same bias-corrected form
  (``p -= lr * m_hat / (sqrt(v_hat) + eps)``, elementwise second moments), which is
  what ``torch.optim.Adam`` computes. The paper leaves biases, batch-norm scales and
  the softmax (output) layer to Adam; which parameters go where is the model's
  choice (see :meth:`reluverify.train.models.ReluMLP.sphere_parameters`).

Invariants after every :meth:`NDAdam.step`:

* every row of every sphere parameter has Euclidean norm 1 (up to float rounding);
* the pre-normalisation update ``w_bar - w_{t-1}`` of a weight vector is a linear
  combination of its projected gradients ``g_1 .. g_t`` (``m_t`` is one), so ``w_t`` lies
  in the span of ``w_0, g_1, .. g_t``: the update keeps the gradients' directions, which
  Adam's elementwise scaling does not.

Why this is harmless for the ReLU networks reluverify verifies: ReLU is positively
homogeneous, ``relu(s z) = s relu(z)`` for ``s > 0``, so any ReLU layer equals one with
unit-norm rows followed by a rescaled next layer (and a rescaled bias); the
constraint removes a redundant scale, not expressiveness.

Hyper-parameters (group keys): ``lr`` (``alpha^v`` for sphere groups, ``alpha`` for
Adam groups; the trainer passes different values, see
:class:`reluverify.train.optimizers.OptimizerOptions`), ``betas``, ``eps``, and
``weight_decay`` (an L2 term added to the gradient of Adam groups only: on the sphere
the norm is fixed, so decay is meaningless and refused).
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class NDAdam(Optimizer):
    """ND-Adam as a ``torch.optim.Optimizer``; a group with ``sphere=True`` holds weight-vector rows."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0.0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps <= 0.0:
            raise ValueError(f"eps must be positive, got {eps}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, sphere=False)
        super().__init__(params, defaults)
        with torch.no_grad():
            for group in self.param_groups:
                if not group["sphere"]:
                    continue
                if group["weight_decay"]:
                    raise ValueError("weight decay on unit-norm weight vectors is meaningless; use it on other groups")
                for p in group["params"]:
                    if p.dim() != 2:
                        raise ValueError(f"sphere parameters must be 2-D (units, fan_in), got shape {tuple(p.shape)}")
                    norms = p.norm(dim=1, keepdim=True)
                    if not torch.all(norms > 0):
                        raise ValueError("a weight vector of norm 0 cannot be put on the unit sphere")
                    p.div_(norms)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ND-Adam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = (
                        p.new_zeros((p.shape[0], 1)) if group["sphere"] else torch.zeros_like(p)
                    )
                state["step"] += 1
                t = state["step"]
                if group["sphere"]:
                    grad = p.grad - (p.grad * p).sum(dim=1, keepdim=True) * p
                    squared = (grad * grad).sum(dim=1, keepdim=True)
                else:
                    grad = p.grad
                    if group["weight_decay"]:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    squared = grad * grad
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                v.mul_(beta2).add_(squared, alpha=1.0 - beta2)
                m_hat = m / (1.0 - beta1**t)
                v_hat = v / (1.0 - beta2**t)
                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-group["lr"])
                if group["sphere"]:
                    p.div_(p.norm(dim=1, keepdim=True))
        return loss
