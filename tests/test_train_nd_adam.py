"""ND-Adam: the sphere invariant, direction preservation, a hand-computed step, plain Adam elsewhere."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reluverify.train.models import ReluMLP  # noqa: E402
from reluverify.train.nd_adam import NDAdam  # noqa: E402
from reluverify.train.optimizers import OptimizerOptions, build_optimizer  # noqa: E402
from reluverify.train.trainer import one_thread  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_thread():
        yield


def _row_norms(p: torch.Tensor) -> np.ndarray:
    return p.detach().double().norm(dim=1).numpy()


def test_initialisation_puts_weight_vectors_on_the_sphere():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0], [0.0, -2.0]]))
    NDAdam([{"params": [w], "sphere": True}])
    assert torch.allclose(w, torch.tensor([[0.6, 0.8], [0.0, -1.0]]))


def test_sphere_invariant_holds_after_every_step():
    torch.manual_seed(0)
    model = ReluMLP((6, 9, 7, 3))
    optimizer = build_optimizer(model, OptimizerOptions(name="nd-adam", lr=0.01, lr_sphere=0.2))
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    for _ in range(25):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model.logits(x), y).backward()
        optimizer.step()
        for p in model.sphere_parameters():
            assert np.allclose(_row_norms(p), 1.0, atol=1e-6)
    # the output layer and the biases are not constrained (plain Adam moved them freely)
    assert not np.allclose(_row_norms(model.head.linear.weight), 1.0, atol=1e-3)


def test_only_hidden_weights_are_on_the_sphere():
    model = ReluMLP((4, 5, 6, 2))
    optimizer = build_optimizer(model, OptimizerOptions(name="nd-adam"))
    sphere = [g for g in optimizer.param_groups if g["sphere"]]
    assert len(sphere) == 1
    assert {id(p) for p in sphere[0]["params"]} == {id(model.hidden[0].weight), id(model.hidden[1].weight)}
    assert sphere[0]["lr"] == OptimizerOptions().lr_sphere


def _residual(target: np.ndarray, basis: list[np.ndarray]) -> tuple[float, np.ndarray]:
    matrix = np.stack(basis, axis=1)
    coefficients, *_ = np.linalg.lstsq(matrix, target, rcond=None)
    return float(np.linalg.norm(matrix @ coefficients - target)), coefficients


def _projected_gradients_run(optimizer_factory, steps: int = 5, seed: int = 1):
    """Steps on a 3 x 12 weight matrix; returns the weights after each step and the projected gradients."""
    generator = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(3, 12, generator=generator, dtype=torch.float64))
    optimizer = optimizer_factory(w)
    weights = [w.detach().clone()]
    projected = []
    for _ in range(steps):
        x = torch.randn(8, 12, generator=generator, dtype=torch.float64)
        target = torch.randn(8, 3, generator=generator, dtype=torch.float64)
        optimizer.zero_grad()
        ((torch.tanh(x @ w.T) - target) ** 2).sum().backward()
        current = w.detach()
        projected.append(w.grad - (w.grad * current).sum(dim=1, keepdim=True) * current)
        optimizer.step()
        weights.append(w.detach().clone())
    return weights, projected


def test_update_lies_in_the_span_of_past_projected_gradients():
    weights, projected = _projected_gradients_run(lambda w: NDAdam([{"params": [w], "sphere": True, "lr": 0.3}]))
    for t in range(1, len(weights)):
        for row in range(3):
            previous, now = weights[t - 1][row].numpy(), weights[t][row].numpy()
            gradients = [g[row].numpy() for g in projected[:t]]
            # w_bar_t = ||w_bar_t|| w_t and w_bar_t - w_{t-1} is in span(g_1..g_t)
            residual, coefficients = _residual(previous, [now] + gradients)
            assert residual < 1e-10
            assert coefficients[0] > 0  # the normalisation divides by a positive norm
            # hence, by induction, w_t lies in span(w_0, g_1, .., g_t)
            residual, _ = _residual(now, [weights[0][row].numpy()] + gradients)
            assert residual < 1e-10


def test_adam_updates_leave_that_span():
    # the property has teeth: Adam's elementwise scaling turns the update away from the gradients
    weights, projected = _projected_gradients_run(lambda w: torch.optim.Adam([w], lr=0.3))
    residual, _ = _residual(
        weights[3][0].numpy() - weights[2][0].numpy(), [g[0].numpy() for g in projected[:3]] + [weights[2][0].numpy()]
    )
    assert residual > 1e-3


def test_one_step_matches_the_hand_computed_example():
    # w_0 = (3, 4)/5 = (0.6, 0.8); loss = w[0] + 2 b, so grad w = (1, 0) and grad b = 2.
    # g = (1, 0) - 0.6 (0.6, 0.8) = (0.64, -0.48), ||g||^2 = 0.64.
    # m_1 = 0.1 g, v_1 = 0.001 * 0.64; bias-corrected: m_hat = g, v_hat = 0.64, sqrt = 0.8.
    # w_bar = w_0 - 0.1 * (0.64, -0.48) / 0.8 = (0.52, 0.86); w_1 = w_bar / sqrt(1.01).
    # Adam on b = 1: m_hat = 2, v_hat = 4, b_1 = 1 - 0.01 * 2 / 2 = 0.99.
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = NDAdam([{"params": [w], "sphere": True, "lr": 0.1}, {"params": [b], "lr": 0.01}], eps=1e-12)
    (w[0, 0] + 2.0 * b.sum()).backward()
    optimizer.step()
    expected = np.array([0.52, 0.86]) / math.sqrt(1.01)
    assert np.allclose(w.detach().numpy()[0], expected, atol=1e-12)
    assert math.isclose(float(b.detach()), 0.99, abs_tol=1e-12)
    assert math.isclose(float(optimizer.state[w]["exp_avg_sq"]), 0.00064, rel_tol=1e-12)
    assert optimizer.state[w]["exp_avg_sq"].shape == (1, 1)  # one scalar per weight vector


def test_other_groups_follow_torch_adam_exactly():
    torch.manual_seed(3)
    ours = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    reference = torch.nn.Parameter(ours.detach().clone())
    nd = NDAdam([ours], lr=0.01, weight_decay=0.1)
    adam = torch.optim.Adam([reference], lr=0.01, weight_decay=0.1)
    for _ in range(10):
        grad = torch.randn(4, 3, dtype=torch.float64)
        for p, opt in ((ours, nd), (reference, adam)):
            opt.zero_grad()
            (p * grad).sum().backward()
            opt.step()
    assert torch.allclose(ours, reference, atol=1e-12)


@pytest.mark.parametrize(
    "group, message",
    [
        ({"params": [torch.nn.Parameter(torch.ones(3))], "sphere": True}, "2-D"),
        ({"params": [torch.nn.Parameter(torch.zeros(2, 3))], "sphere": True}, "norm 0"),
        ({"params": [torch.nn.Parameter(torch.ones(2, 3))], "sphere": True, "weight_decay": 0.1}, "weight decay"),
    ],
)
def test_bad_sphere_groups_are_refused(group, message):
    with pytest.raises(ValueError, match=message):
        NDAdam([group])
