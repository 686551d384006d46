"""Where a box's ascent parameters for one target sit in a flat float32 row, so that a box can hand the
parameters its ascent ended with to its children (:class:`ParameterLayout`)."""

from __future__ import annotations

import numpy as np


class ParameterLayout:
    """The columns of one box's and target's parameters: the slopes and the two bound multipliers of every
    hidden neuron (layer by layer), the input rows' multipliers, the weights of the target's rows (padded
    to the most rows of any target)."""

    def __init__(self, layer_sizes: list[int], input_rows: int, rows: int) -> None:
        relus = int(sum(layer_sizes))
        starts = np.concatenate([[0], np.cumsum(layer_sizes)]).astype(int)
        # per hidden layer: its slopes' columns and its (lower, upper) multipliers' columns
        self.layers = [(slice(s, e), slice(relus + 2 * s, relus + 2 * e)) for s, e in zip(starts[:-1], starts[1:])]
        self.gamma = slice(3 * relus, 3 * relus + input_rows)
        self.weights = 3 * relus + input_rows  # first column of the row weights
        self.size = self.weights + rows

    def pack(self, params) -> np.ndarray:
        """(k, size) from :class:`~reluverify.solver.bounds.alpha_crown.Parameters` of k boxes and one row each."""
        k = params.weights.shape[0]
        out = np.zeros((k, self.size), dtype=np.float32)
        for (slopes, multipliers), a, b in zip(self.layers, params.alpha, params.beta):
            out[:, slopes] = a[:, 0, :]
            out[:, multipliers] = b[:, 0, :, :].reshape(k, -1)
        if params.gamma is not None:
            out[:, self.gamma] = params.gamma[:, 0, :]
        out[:, self.weights : self.weights + params.weights.shape[2]] = params.weights[:, 0, :]
        return out

    def unpack_into(self, params, packed: np.ndarray, mask: np.ndarray) -> None:
        """Overwrite the parameters of the boxes in ``mask`` (k,) with their rows of ``packed`` (k, size)."""
        index = np.flatnonzero(mask)
        if index.size == 0:
            return
        rows = packed[index].astype(params.weights.dtype)
        for (slopes, multipliers), a, b in zip(self.layers, params.alpha, params.beta):
            a[index, 0, :] = rows[:, slopes]
            b[index, 0, :, :] = rows[:, multipliers].reshape(index.size, -1, 2)
        if params.gamma is not None:
            params.gamma[index, 0, :] = rows[:, self.gamma]
        params.weights[index, 0, :] = rows[:, self.weights : self.weights + params.weights.shape[2]]
