"""A property's inputs: points (with their true labels and domain) and labels, read from files by one reader.

A **point** is one input of the network, flattened in C order (an image of shape (8, 8) is its 64
values row by row). Every command and the API read points with :func:`read_point_set` -- one point
(``verify --point``, ``max-delta``, :func:`read_point`) or many (``verify --points``, ``sweep``) --
from these files (``n`` is the network's input size):

* ``.npy`` -- an array of shape ``(k, n)`` or ``(k, ...)`` whose trailing dimensions hold ``n``
  values (``(k, 8, 8)`` images); an array of any other shape with ``n`` values is one point;
* ``.csv`` -- one point per line, ``n`` comma-separated numbers; a file whose lines together hold
  ``n`` numbers (an image laid out as rows) is one point. Blank lines and lines starting with ``#``
  are skipped; a first line made only of names (``x0,x1,...``) is a header;
* ``.json`` -- a list of points (each a list of ``n`` numbers, nested lists flattened) or one point
  (a list whose numbers, nested lists flattened, are ``n``); or an object with the list under
  ``"points"`` (many) or ``"point"`` (one; also ``"x"`` or ``"input"``). The object may carry the
  true labels (``"labels"``, one per point; ``"label"`` beside ``"point"``) and the domain
  (``"domain"``, as in a domain file: see :mod:`reluverify.properties.domains`);
* ``.npz`` -- the points in the array ``points`` (also ``point`` or ``x``), else in the archive's only
  array; the labels in ``labels`` (or ``y``); the domain in ``lower`` and ``upper``.

**Labels** -- the true class of each point, integers in ``[0, number of outputs)`` -- come from the
points file or from a labels file (:func:`read_labels`): ``.npy`` (one label per entry), ``.csv``
(one or more per line, an optional header line of names), ``.json`` (a list, or an object with
``"labels"``) or ``.npz`` (``labels``, ``y``, or the only array).

Every problem is a :class:`~reluverify.errors.SpecError` with one line naming the file and the bad
entry (``points.json: point 3: the point has 63 values, the network has 64 inputs``,
``labels.csv: entry 7 (line 8): 10 is not a label of a network with 10 outputs``). The domain
helpers of :mod:`reluverify.properties.domains` are importable from here too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.query import BEYOND_FLOAT32, LARGEST_INPUT
from reluverify.properties.domains import (Domain, check_in_domain, domain_from_json, domain_from_npz, load_domain,
                                           parse_domain, read_domain)
from reluverify.properties.input_files import (NpzArrays, file_kind, json_numbers, number_text, read_csv_rows,
                                               read_json, read_npy)

__all__ = [
    "Domain", "PointSet", "check_in_domain", "check_labels", "check_point", "load_domain", "load_point",
    "load_point_and_domain", "parse_domain", "read_domain", "read_json", "read_labels", "read_npy", "read_point",
    "read_point_set", "write_point",
]

POINT_KEYS = ("point", "x", "input")
NPZ_POINTS = ("points", "point", "x")
NPZ_LABELS = ("labels", "y")


@dataclass(frozen=True, eq=False)
class PointSet:
    """The points of a file, ``(k, n)`` float64, with the labels (``(k,)`` int64) and domain it carries."""

    file: str
    points: np.ndarray
    labels: np.ndarray | None = None
    domain: Domain | None = None


# ----------------------------------------------------------------- checking
def check_point(values, size: int | None, what: str = "point") -> np.ndarray:
    """``values`` as a flat float64 vector of ``size`` finite numbers of magnitude at most
    :data:`~reluverify.query.LARGEST_INPUT` (float32's range), or a one-line SpecError."""
    try:
        point = np.asarray(values, dtype=np.float64).reshape(-1)
    except OverflowError:
        raise SpecError(f"{what}: the point holds a number beyond the range of float64") from None
    except (TypeError, ValueError):
        raise SpecError(f"{what}: the point must be numbers") from None
    if size is not None and point.size != size:
        raise SpecError(f"{what}: the point has {point.size} values, the network has {size} inputs")
    bad = np.flatnonzero(~np.isfinite(point))
    if bad.size:
        raise SpecError(f"{what}: value {int(bad[0])} of the point is {point[bad[0]]} (not a finite number)")
    big = np.flatnonzero(np.abs(point) > LARGEST_INPUT)
    if big.size:
        raise SpecError(f"{what}: value {int(big[0])} of the point is {point[big[0]]:g}, {BEYOND_FLOAT32}")
    return point


def check_labels(values, count: int | None, outputs: int | None, where: str, lines=None) -> np.ndarray:
    """``values`` as ``count`` labels in ``[0, outputs)`` (int64), or a one-line SpecError naming the entry.

    ``where`` names the file (and key); ``lines`` gives each entry's line in a CSV file.
    """
    labels = []
    for index, value in enumerate(values):
        entry = f"{where}: entry {index}" + ("" if lines is None else f" (line {lines[index]})")
        number = _integer(value)
        if number is None or number < 0:
            raise SpecError(f"{entry}: {_shown(value)} is not a label (labels are integers from 0)")
        if outputs is not None and number >= outputs:
            raise SpecError(f"{entry}: {_shown(value)} is not a label of a network with {outputs} outputs")
        labels.append(number)
    if count is not None and len(labels) != count:
        raise SpecError(f"{where}: {len(labels)} labels for {count} points")
    return np.asarray(labels, dtype=np.int64)


def _integer(value) -> int | None:
    """An integral number as an int (``3``, ``3.0``, ``np.int64(3)``); None for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def _shown(value) -> str:
    """A label entry as its file wrote it (a number with its digits, a string quoted), at most 30 characters."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value)) if abs(int(value)) < 10**18 else "an integer of more than 18 digits"
    if isinstance(value, (float, np.floating)) and np.isfinite(value):
        return number_text(value)
    try:
        return json.dumps(value)[:30]
    except (TypeError, ValueError):
        return type(value).__name__


# ----------------------------------------------------------------- points
def _rows_to_points(rows: list[np.ndarray], size: int, path: str, name) -> np.ndarray:
    """Points from entries (``name(i)`` names entry ``i``): one point per entry when every entry has
    ``size`` values, else all entries together as one point when they hold ``size`` values."""
    if not rows:
        raise SpecError(f"{path}: the file holds no points")
    if all(r.size == size for r in rows):
        points = [check_point(r, size, what=f"{path}: {name(i)}") for i, r in enumerate(rows)]
        return np.asarray(points, dtype=np.float64).reshape(len(points), size)
    if len(rows) == 1:
        return check_point(rows[0], size, what=path).reshape(1, size)
    total = sum(r.size for r in rows)
    if total == size:
        return check_point(np.concatenate(rows), size, what=path).reshape(1, size)
    bad = next(i for i, r in enumerate(rows) if r.size != size)
    raise SpecError(f"{path}: {name(bad)}: {rows[bad].size} values, the network has {size} inputs")


def _points_from_array(array: np.ndarray, size: int, path: str) -> np.ndarray:
    if array.ndim == 0 or array.size == 0:
        raise SpecError(f"{path}: the file holds no points")
    per_point = int(np.prod(array.shape[1:])) if array.ndim > 1 else array.size
    if array.ndim > 1 and per_point == size:
        flat = array.reshape(array.shape[0], size)
    elif array.size == size:
        flat = array.reshape(1, size)  # one point stored in its own shape, e.g. an (8, 8) image
    elif array.ndim == 1:
        raise SpecError(f"{path}: a flat array of {array.size} values is not a point of {size} values; "
                        f"store k points as shape (k, {size})")
    else:
        raise SpecError(f"{path}: shape {tuple(array.shape)} holds points of {per_point} values, "
                        f"the network has {size} inputs")
    return np.asarray([check_point(p, size, what=f"{path}: point {i}") for i, p in enumerate(flat)],
                      dtype=np.float64).reshape(len(flat), size)


def _from_json(path: str, size: int) -> tuple[np.ndarray, object, str, object]:
    """The points of a JSON file, the labels value it carries (or None) and its key, and its domain value."""
    data = read_json(path)
    labels = domain = None
    key = "labels"
    if isinstance(data, dict):
        entry = data
        single = next((k for k in POINT_KEYS if k in entry), None)
        if "points" in entry and single is not None:
            raise SpecError(f"{path}: give 'points' (many) or {single!r} (one), not both")
        if "points" not in entry and single is None:
            raise SpecError(f"{path}: expected a list of numbers, or an object with a 'point' list (one point) "
                            "or a 'points' list")
        if "labels" in entry and "label" in entry:
            raise SpecError(f"{path}: give 'labels' or 'label' (one point), not both")
        labels, domain = entry.get("labels"), entry.get("domain")
        if entry.get("label") is not None:
            labels, key = [entry["label"]], "label"
        if single is not None:
            point = json_numbers(entry[single], path, "point")
            return _rows_to_points([point], size, path, lambda i: "the point"), labels, key, domain
        data = entry["points"]
    if not isinstance(data, list):
        raise SpecError(f"{path}: expected a list of points")
    if data and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
        rows = [json_numbers(data, path, "point")]
    else:
        rows = []
        for index, item in enumerate(data):
            if not isinstance(item, list):
                raise SpecError(f"{path}: point {index} must be a list of numbers")
            rows.append(json_numbers(item, path, f"point {index}"))
    return _rows_to_points(rows, size, path, lambda i: f"point {i}"), labels, key, domain


def read_point_set(path: str | os.PathLike, size: int, outputs: int | None = None) -> PointSet:
    """The points in ``path`` (``(k, size)``, every value checked), with the labels and domain it
    carries (the labels checked to be ``k`` integers in ``[0, outputs)``; the points are not checked
    against the domain here, since another domain may replace it)."""
    path = os.fspath(path)
    kind = file_kind(path, "points")
    labels = domain = None
    where = path
    if kind == ".npy":
        points = _points_from_array(read_npy(path), size, path)
    elif kind == ".npz":
        arrays = NpzArrays(path)
        name = arrays.named(NPZ_POINTS)
        if name is None:
            others = [n for n in arrays.names if n not in NPZ_LABELS + ("lower", "upper")]
            if len(others) != 1:
                raise SpecError(f"{path}: no array named 'points' among {', '.join(map(repr, arrays.names))[:200]} "
                                "(name the points 'points', their labels 'labels')")
            name = others[0]
        points = _points_from_array(arrays[name], size, f"{path}: array {name!r}")
        label_name = arrays.named(NPZ_LABELS)
        if label_name is not None:
            labels, where = arrays[label_name].reshape(-1).tolist(), f"{path}: array {label_name!r}"
        domain = domain_from_npz(arrays, size)
    elif kind == ".csv":
        rows = read_csv_rows(path)
        if not rows:
            raise SpecError(f"{path}: the file holds no points")
        lines = [number for number, _ in rows]
        points = _rows_to_points([np.asarray(r, dtype=np.float64) for _, r in rows], size, path,
                                 lambda i: f"line {lines[i]}")
    else:
        points, labels, key, carried = _from_json(path, size)
        where = f"{path}: '{key}'"
        if carried is not None:
            domain = domain_from_json(carried, size, f"{path}: domain")
    if points.shape[0] == 0:
        raise SpecError(f"{path}: the file holds no points")
    if labels is not None:
        if not isinstance(labels, list):
            raise SpecError(f"{where}: expected a list of labels, one per point")
        labels = check_labels(labels, len(points), outputs, where)
    return PointSet(path, points, labels, domain)


def read_point(path: str | os.PathLike, size: int) -> tuple[np.ndarray, Domain | None]:
    """The one point in ``path`` and the domain it carries (not yet checked against each other)."""
    found = read_point_set(path, size)
    if len(found.points) != 1:
        raise SpecError(f"{found.file}: the file holds {len(found.points)} points; give one point "
                        "(or check them all with --points)")
    if found.labels is not None:
        raise SpecError(f"{found.file}: the file carries a true label, which a check at one point does not read "
                        "(give it to --points, which counts misclassified points)")
    return found.points[0], found.domain


def load_point(path: str | os.PathLike, size: int) -> np.ndarray:
    """The one point in ``path`` as a flat float64 vector of ``size`` values (its domain, if any, is not used)."""
    return read_point(path, size)[0]


def load_point_and_domain(path: str | os.PathLike, size: int) -> tuple[np.ndarray, Domain | None]:
    """The one point in ``path`` and the domain it carries, the point checked inside it."""
    point, domain = read_point(path, size)
    if domain is not None:
        check_in_domain(point, domain, what=os.fspath(path))
    return point, domain


# ----------------------------------------------------------------- labels
def read_labels(path: str | os.PathLike, count: int | None, outputs: int | None = None) -> np.ndarray:
    """The labels of a labels file (see the module docstring): ``count`` integers in ``[0, outputs)``."""
    path = os.fspath(path)
    kind = file_kind(path, "labels")
    lines = None
    where = path
    if kind == ".json":
        values = read_json(path)
        if isinstance(values, dict):
            if values.get("labels") is None:
                raise SpecError(f"{path}: expected a list of labels or an object with a 'labels' list")
            values, where = values["labels"], f"{path}: 'labels'"
        if not isinstance(values, list):
            raise SpecError(f"{where}: expected a list of labels")
    elif kind == ".csv":
        rows = read_csv_rows(path)
        values = [v for _, row in rows for v in row]
        lines = [number for number, row in rows for _ in row]
    else:
        if kind == ".npz":
            arrays = NpzArrays(path)
            name = arrays.named(NPZ_LABELS)
            if name is None:
                if len(arrays.names) != 1:
                    raise SpecError(f"{path}: no array named 'labels' among "
                                    f"{', '.join(map(repr, arrays.names))[:200]}")
                name = arrays.names[0]
            array, where = arrays[name], f"{path}: array {name!r}"
        else:
            array = read_npy(path)
        values = array.reshape(-1).tolist()
    if not values:
        raise SpecError(f"{where}: no labels")
    return check_labels(values, count, outputs, where, lines)


# ----------------------------------------------------------------- writing
def write_point(path: str | os.PathLike, point: np.ndarray, **extra) -> None:
    """Write ``point`` as JSON (``{"point": [...], ...extra}``), ``.npy`` or one-row ``.csv``."""
    path = os.fspath(path)
    point = np.asarray(point, dtype=np.float64).reshape(-1)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        np.save(path, point)
    elif suffix == ".csv":
        with open(path, "w") as handle:
            handle.write(",".join(repr(float(v)) for v in point) + "\n")
    else:
        with open(path, "w") as handle:
            json.dump({"point": point.tolist(), **extra}, handle, indent=1)
            handle.write("\n")
