"""Labelled data sets as fixed train/test splits, and the 8x8 handwritten digits.

A :class:`LabelledSplit` holds float32 inputs (one flat row per example) and int64
labels. Its held-out part never depends on the training seed, so every network
trained on a task is measured on the same examples, and a test can re-measure a
shipped network on them.

Digits: scikit-learn's bundled copy of the UCI optical-recognition digits (1797
images, 8x8 pixels of intensity 0..16, 10 classes; no download). Inputs are the 64
pixels in row-major order divided by 16, so they lie in ``[0, 1]``; the split is
stratified, 25 % held out, with the fixed seed :data:`DIGITS_SPLIT_SEED`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25


@dataclass(frozen=True)
class LabelledSplit:
    """Train and held-out examples; ``inputs`` are (n, features) float32, ``labels`` (n,) int64."""

    train_inputs: np.ndarray
    train_labels: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray
    description: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for inputs, labels in ((self.train_inputs, self.train_labels), (self.test_inputs, self.test_labels)):
            if inputs.ndim != 2 or labels.shape != (inputs.shape[0],):
                raise ValueError("inputs must be (n, features) with one label per row")

    @property
    def features(self) -> int:
        return int(self.train_inputs.shape[1])


def digits_split() -> LabelledSplit:
    """The 8x8 digits, pixels scaled to ``[0, 1]``, split 75/25 stratified with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    inputs = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        inputs, labels, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    return LabelledSplit(
        x_train,
        y_train,
        x_test,
        y_test,
        description={
            "name": "8x8 handwritten digits",
            "source": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
            "input": "64 pixels, row-major, intensity / 16, in [0, 1]",
            "classes": 10,
            "train": int(len(y_train)),
            "test": int(len(y_test)),
            "split": f"stratified, {DIGITS_TEST_FRACTION:.0%} held out, random_state={DIGITS_SPLIT_SEED}",
        },
    )
