"""The SRU layer: batched computation against a step-by-step reference, gradients, initialisation."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from reluverify.train.models import SRUClassifier  # noqa: E402
from reluverify.train.sru import SRU  # noqa: E402
from reluverify.train.trainer import one_thread  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_thread():
        yield


def reference_sru(layer: SRU, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's equations written literally: one example, one step, one matrix-vector product at a time."""
    n = layer.hidden_size
    w = layer.weight
    W, W_f, W_r = w[:n], w[n : 2 * n], w[2 * n : 3 * n]
    W_h = w[3 * n :] if layer.projected_highway else None
    v_f, v_r = layer.v
    b_f, b_r = layer.bias
    outputs, states = [], []
    for example in x:
        c = torch.zeros(n, dtype=x.dtype)
        hs = []
        for x_t in example:
            f = torch.sigmoid(W_f @ x_t + v_f * c + b_f)
            r = torch.sigmoid(W_r @ x_t + v_r * c + b_r)
            c = f * c + (1 - f) * (W @ x_t)
            skip = W_h @ x_t if W_h is not None else x_t
            hs.append(r * c + (1 - r) * layer.alpha * skip)
        outputs.append(torch.stack(hs))
        states.append(c)
    return torch.stack(outputs), torch.stack(states)


@pytest.mark.parametrize("input_size, hidden_size, highway_bias", [(5, 5, 0.0), (4, 7, -1.0), (6, 3, 0.5)])
def test_batched_layer_matches_the_step_by_step_reference(input_size, hidden_size, highway_bias):
    torch.manual_seed(0)
    layer = SRU(input_size, hidden_size, highway_bias=highway_bias).double()
    with torch.no_grad():
        layer.bias.normal_()  # non-zero b_f too, so a mix-up of the two biases shows
    x = torch.randn(3, 9, input_size, dtype=torch.float64)
    h, c_last = layer(x)
    expected_h, expected_c = reference_sru(layer, x)
    assert h.shape == (3, 9, hidden_size)
    assert torch.allclose(h, expected_h, atol=1e-12)
    assert torch.allclose(c_last, expected_c, atol=1e-12)


def test_initial_state_is_used():
    torch.manual_seed(1)
    layer = SRU(3, 3).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    c0 = torch.randn(2, 3, dtype=torch.float64)
    h_zero, _ = layer(x)
    h_c0, _ = layer(x, c0)
    assert not torch.allclose(h_zero, h_c0)
    # feeding the state of the first half into the second half equals running the whole sequence
    _, c_half = layer(x[:, :2])
    h_second, _ = layer(x[:, 2:], c_half)
    assert torch.allclose(h_second, h_zero[:, 2:], atol=1e-12)


def test_gradients_flow_to_every_parameter_and_through_time():
    torch.manual_seed(2)
    layer = SRU(4, 6).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    h, _ = layer(x)
    h[:, -1].sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert x.grad[:, 0].abs().sum() > 0  # the last output depends on the first step through c


def test_gradients_are_correct():
    from torch.func import functional_call

    torch.manual_seed(3)
    layer = SRU(3, 4).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_() for p in (layer.weight, layer.v, layer.bias))

    def outputs(inp, weight, v, bias):
        return functional_call(layer, {"weight": weight, "v": v, "bias": bias}, (inp,))[0]

    assert torch.autograd.gradcheck(outputs, (x, *params))


def test_initialisation_follows_the_paper():
    torch.manual_seed(4)
    layer = SRU(200, 150, highway_bias=-1.0)
    n = layer.hidden_size
    assert layer.alpha == pytest.approx(math.sqrt(1 + 2 * math.exp(-1.0)))
    assert SRU(4, 4).alpha == pytest.approx(math.sqrt(3.0))
    assert SRU(4, 4, rescale=False).alpha == 1.0
    w = layer.weight.detach()
    # variance 1/d for W (and W_h), halved for the gate rows W_f, W_r
    assert w[:n].var().item() == pytest.approx(1 / 200, rel=0.05)
    assert w[3 * n :].var().item() == pytest.approx(1 / 200, rel=0.05)
    assert w[n : 3 * n].var().item() == pytest.approx(0.5 / 200, rel=0.05)
    assert layer.v.detach().var().item() == pytest.approx(0.5, rel=0.15)
    assert torch.all(layer.bias[0] == 0) and torch.all(layer.bias[1] == -1.0)
    assert layer.matrices == 4 and SRU(5, 5).matrices == 3


def test_one_batched_product_for_all_steps(monkeypatch):
    layer = SRU(3, 3)
    calls = []
    original = torch.Tensor.__matmul__

    def counting(a, b):
        calls.append((tuple(a.shape), tuple(b.shape)))
        return original(a, b)

    monkeypatch.setattr(torch.Tensor, "__matmul__", counting)
    layer(torch.randn(2, 7, 3))
    assert calls == [((2, 7, 3), (3, 9))]


def test_classifier_reads_rows_and_trains():
    torch.manual_seed(5)
    model = SRUClassifier(steps=4, features=3, hidden=5, classes=2)
    x = torch.rand(32, 12)
    y = (x[:, :3].sum(dim=1) > x[:, -3:].sum(dim=1)).long()  # needs the first and the last row
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.logits(x), y)
        first = first if first is not None else loss.item()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    assert model(x).shape == (32, 2)
    assert model.sphere_parameters() == []
