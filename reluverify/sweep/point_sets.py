"""Sets of points for a sweep (and their true labels), from ``.npy``, ``.csv`` or ``.json``.

* ``.npy`` -- an array of shape ``(k, n)`` (or ``(k, ...)`` whose trailing dimensions hold ``n``
  values, e.g. ``(k, 8, 8)`` images), or a single point of ``n`` values;
* ``.csv`` -- one point per line, ``n`` comma-separated numbers; blank lines and lines starting
  with ``#`` are skipped; a first line made only of names (``x0,x1,...``) is taken as a header;
* ``.json`` -- a list of points (each a list of ``n`` numbers, nested lists flattened), a single
  point (a flat list of ``n`` numbers), or an object with the list under ``"points"``.

A ``.json`` object may also hold ``"labels"``: the true label of each point (integers, one per
point), which :func:`read_labels` reads; the other formats carry no labels.

Every problem (missing file, unknown suffix, a cell that is not a number, a point of the wrong
size, NaN or infinity, no point at all, labels that are not one integer per point) is a
:class:`~reluverify.errors.SpecError` with one line naming the file and the line or point.
"""

from __future__ import annotations

import os

import numpy as np

from reluverify.errors import SpecError
from reluverify.properties.inputs import check_point, read_json, read_npy


def read_points(path: str | os.PathLike, size: int) -> np.ndarray:
    """The points in ``path`` as a float64 array of shape ``(k, size)``, every value checked."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SpecError(f"{path}: no such file")
    if os.path.isdir(path):
        raise SpecError(f"{path}: is a directory, not a points file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        points = _from_npy(path, size)
    elif suffix == ".csv":
        points = _from_csv(path, size)
    elif suffix == ".json":
        points = _from_json(path, size)
    else:
        raise SpecError(f"{path}: unknown points file type {suffix or '(none)'!r}: use .npy, .csv or .json")
    if points.shape[0] == 0:
        raise SpecError(f"{path}: the file holds no points")
    return points


def _checked(rows, size: int, path: str, where) -> np.ndarray:
    points = []
    for index, row in enumerate(rows):
        points.append(check_point(row, size, what=f"{path}: {where(index)}"))
    return np.asarray(points, dtype=np.float64).reshape(len(points), size)


def _from_npy(path: str, size: int) -> np.ndarray:
    array = read_npy(path)
    if array.ndim == 0 or array.size == 0:
        raise SpecError(f"{path}: the file holds no points")
    if array.ndim == 1:
        if array.size != size:
            raise SpecError(f"{path}: a flat array of {array.size} values is not a point of {size} values; "
                            f"store k points as shape (k, {size})")
        array = array.reshape(1, size)
    per_point = int(np.prod(array.shape[1:]))
    if per_point != size:
        if array.size != size:
            raise SpecError(f"{path}: shape {tuple(array.shape)} holds points of {per_point} values, "
                            f"the network has {size} inputs")
        array = array.reshape(1, size)  # one point stored in its own shape, e.g. an (8, 8) image
    return _checked(array.reshape(array.shape[0], size), size, path, lambda i: f"point {i}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _from_csv(path: str, size: int) -> np.ndarray:
    rows, lines = [], []
    try:
        with open(path) as handle:
            content = list(enumerate(handle, start=1))
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file") from None
    first = True
    for number, line in content:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        cells = [cell.strip() for cell in text.split(",")]
        if cells and cells[-1] == "":
            cells = cells[:-1]
        if first and cells and not any(_is_number(c) for c in cells):
            first = False  # a header of names
            continue
        first = False
        row = []
        for cell in cells:
            try:
                row.append(float(cell))
            except ValueError:
                raise SpecError(f"{path}: line {number}: {cell[:30]!r} is not a number") from None
        if len(row) != size:
            raise SpecError(f"{path}: line {number}: {len(row)} values, the network has {size} inputs")
        rows.append(row)
        lines.append(number)
    return _checked(rows, size, path, lambda i: f"line {lines[i]}")


def _numbers(value, path: str, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise SpecError(f"{path}: {what} holds a number beyond the range of float64") from None
    except (TypeError, ValueError):
        raise SpecError(f"{path}: {what} must be a list of numbers") from None
    return array


def _from_json(path: str, size: int) -> np.ndarray:
    data = read_json(path)
    if isinstance(data, dict):
        if "points" not in data:
            raise SpecError(f"{path}: expected a list of points or an object with a 'points' list")
        data = data["points"]
    if not isinstance(data, list):
        raise SpecError(f"{path}: expected a list of points")
    if data and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
        if len(data) != size:
            raise SpecError(f"{path}: a flat list of {len(data)} numbers is not a point of {size} values; "
                            "give a list of points")
        data = [data]
    rows = []
    for index, item in enumerate(data):
        values = _numbers(item, path, f"point {index}")
        if values.dtype == object:
            raise SpecError(f"{path}: point {index} must be a list of numbers")
        rows.append(values.reshape(-1))
    return _checked(rows, size, path, lambda i: f"point {i}")


def read_labels(path: str | os.PathLike, count: int) -> np.ndarray | None:
    """The true labels stored beside the points of ``path`` (a JSON object's ``"labels"``), or None.

    ``count`` is the number of points :func:`read_points` found; the labels must be exactly one
    non-negative integer per point.
    """
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() != ".json":
        return None
    data = read_json(path)
    if not isinstance(data, dict) or data.get("labels") is None:
        return None
    labels = data["labels"]
    if not isinstance(labels, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in labels
    ):
        raise SpecError(f"{path}: 'labels' must be a list of non-negative integers, one per point")
    if len(labels) != count:
        raise SpecError(f"{path}: {len(labels)} labels for {count} points")
    return np.asarray(labels, dtype=np.int64)
