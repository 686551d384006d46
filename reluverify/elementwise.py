"""The elementwise functions of the IR: every activation kind, its value and its derivative.

One table, :data:`FUNCTIONS`, names every kind an :class:`~reluverify.network.ActivationNode` may
have. Each entry gives

* ``value(z)`` -- the function on float64 arrays, as the network computes it (ONNX semantics:
  ``sign(0) = 0``; ``floor`` rounds down; ``reciprocal(0)``, ``log(z <= 0)`` and ``sqrt(z < 0)``
  are infinite or NaN exactly as in numpy, points where the file's function is undefined too).
  ``exp`` saturates at the largest float64 instead of overflowing to infinity: its true value is
  larger still, and a finite value keeps a later sum with zero weights from turning into NaN
  (``inf * 0``), as it does in a softmax ``1 / sum_j exp(z_j - z_i)`` far from its decision;
* ``derivative(z, out)`` -- the derivative at ``z`` given ``out = value(z)``, for gradient
  attacks. The step functions (``sign``, ``floor``) have derivative 0 almost everywhere, which
  gives an attack nothing to follow, so they return a *surrogate*: the straight-through estimate
  (1 on ``|z| <= 1`` for sign, 1 for floor). Attacks only propose points; every counterexample
  is confirmed on the real function, so the surrogate cannot make an answer wrong;
* ``piecewise_linear`` -- whether the function is piecewise linear and continuous (ReLU only):
  the ReLU solver takes exactly those networks.

The relaxations that bound each kind on an interval live in the solver
(:mod:`reluverify.solver.nonlinear.relaxations`); this module is pure arithmetic and imports
nothing of the solver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Elementwise:
    """One activation kind: its value and its derivative (see the module docstring)."""

    kind: str
    value: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray, np.ndarray], np.ndarray]
    onnx_op: str | None = None
    """The ONNX operator computing it (None: exported as a composition, see :mod:`reluverify.onnx_export`)."""
    piecewise_linear: bool = False


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def _quiet(fn):
    """``fn`` without numpy's warnings at the points where it is infinite or undefined."""

    def wrapped(z):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(np.asarray(z, dtype=np.float64))

    return wrapped


_inverse = _quiet(lambda z: 1.0 / z)
_LARGEST = np.finfo(np.float64).max

FUNCTIONS: dict[str, Elementwise] = {
    f.kind: f
    for f in (
        Elementwise("relu", lambda z: np.maximum(z, 0.0), lambda z, out: (z > 0).astype(np.float64), "Relu", True),
        Elementwise("sigmoid", _sigmoid, lambda z, out: out * (1.0 - out), "Sigmoid"),
        Elementwise("tanh", np.tanh, lambda z, out: 1.0 - out * out, "Tanh"),
        Elementwise("sin", np.sin, lambda z, out: np.cos(z), "Sin"),
        Elementwise("cos", np.cos, lambda z, out: -np.sin(z), "Cos"),
        Elementwise("exp", _quiet(lambda z: np.minimum(np.exp(z), _LARGEST)), lambda z, out: out, "Exp"),
        Elementwise("log", _quiet(np.log), lambda z, out: _inverse(z), "Log"),
        Elementwise("sqrt", _quiet(np.sqrt), lambda z, out: 0.5 * _inverse(out), "Sqrt"),
        Elementwise("reciprocal", _inverse, lambda z, out: -out * out, "Reciprocal"),
        Elementwise("square", _quiet(np.square), lambda z, out: 2.0 * z, None),
        Elementwise("sign", np.sign, lambda z, out: (np.abs(z) <= 1.0).astype(np.float64), "Sign"),
        Elementwise("floor", np.floor, lambda z, out: np.ones_like(z), "Floor"),
    )
}
"""Every activation kind of the IR."""
