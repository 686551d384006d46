"""The tasks of ``reluverify train``: each ties its data, its model and its metric together.

=========  ===========================  ===================================  =====================
task       data                         model                                metric
=========  ===========================  ===================================  =====================
mlp        8x8 digits (64 inputs)       ReLU MLP ``64 -> hidden... -> 10``   test accuracy
sru        8x8 digits, row by row       SRU(8 -> hidden) over 8 steps, head  test accuracy
acas-like  synthetic advisories (5)     ReLU MLP ``5 -> hidden... -> 5``     advisory agreement
=========  ===========================  ===================================  =====================

For classification tasks the prediction is the maximal score; for ``acas-like`` the
network gives costs and the advisory is the minimal score (ACAS Xu's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from reluverify.train import acas_like
from reluverify.train.data import LabelledSplit, digits_split

DIGITS_ROWS = 8  # the SRU reads one 8-pixel row per step
DEFAULT_ACAS_SAMPLES = 200_000


@dataclass(frozen=True)
class Task:
    """One ``reluverify train`` task and its defaults (each a CLI default, recorded in the model card)."""

    name: str
    summary: str
    metric: str
    default_hidden: tuple[int, ...]
    default_epochs: int
    default_batch_size: int
    default_optimizer: str
    costs: bool  # the decision is the minimal score (ACAS Xu) instead of the maximal one
    hidden_layers: int | None  # how many hidden sizes the model takes (None: any number)
    load: Callable[[int], LabelledSplit]  # training-set size (used by acas-like only) -> split
    build: Callable[[int, int, tuple[int, ...], float | None], object]  # inputs, classes, hidden, bn scale -> model
    domain: Callable[[], tuple[np.ndarray, np.ndarray]]  # box of meaningful flat inputs (lower, upper)

    def check_hidden(self, hidden: tuple[int, ...]) -> None:
        if self.hidden_layers is not None and len(hidden) != self.hidden_layers:
            raise ValueError(f"the {self.name} model takes {self.hidden_layers} hidden size(s), got {len(hidden)}")

    def predictions(self, scores: np.ndarray) -> np.ndarray:
        return np.argmin(scores, axis=1) if self.costs else np.argmax(scores, axis=1)


def _mlp(costs: bool):
    def build(inputs: int, classes: int, hidden: tuple[int, ...], bn_scale: float | None):
        from reluverify.train.models import ReluMLP

        return ReluMLP((inputs, *hidden, classes), logit_bn_scale=bn_scale, costs=costs)

    return build


def _sru(inputs: int, classes: int, hidden: tuple[int, ...], bn_scale: float | None):
    from reluverify.train.models import SRUClassifier

    return SRUClassifier(DIGITS_ROWS, inputs // DIGITS_ROWS, hidden[0], classes, logit_bn_scale=bn_scale)


def _unit_box(size: int):
    return lambda: (np.zeros(size), np.ones(size))


TASKS: dict[str, Task] = {
    "mlp": Task(
        name="mlp",
        summary="ReLU MLP on the 8x8 digits",
        metric="test accuracy",
        default_hidden=(32, 32),
        default_epochs=60,
        default_batch_size=32,
        default_optimizer="nd-adam",
        costs=False,
        hidden_layers=None,
        load=lambda _size: digits_split(),
        build=_mlp(costs=False),
        domain=_unit_box(64),
    ),
    "sru": Task(
        name="sru",
        summary="SRU reading the 8x8 digits row by row",
        metric="test accuracy",
        default_hidden=(16,),
        default_epochs=100,
        default_batch_size=32,
        default_optimizer="adam",
        costs=False,
        hidden_layers=1,
        load=lambda _size: digits_split(),
        build=_sru,
        domain=_unit_box(64),
    ),
    "acas-like": Task(
        name="acas-like",
        summary="ACAS Xu-like advisory network on a synthetic advisory function",
        metric="advisory agreement",
        default_hidden=(50,) * 6,
        default_epochs=30,
        default_batch_size=256,
        default_optimizer="nd-adam",
        costs=True,
        hidden_layers=None,
        load=acas_like.acas_like_split,
        build=_mlp(costs=True),
        domain=lambda: (acas_like.normalise(acas_like.RAW_LOWER), acas_like.normalise(acas_like.RAW_UPPER)),
    ),
}

