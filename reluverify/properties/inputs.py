"""A property's inputs: a point and a box domain (:class:`Domain`), read from ``.npy``, ``.csv`` or
``.json`` files and checked.

A **point** is one input of the network, flattened in C order (an image of shape (8, 8) is its
64 values row by row). Accepted files:

* ``.npy`` -- an array of any shape whose number of elements is the network's input size;
* ``.csv`` -- the values separated by commas and/or newlines (one row, one column, or an image
  laid out as rows); no header;
* ``.json`` -- a list of numbers (nested lists are flattened), or an object with the list under
  ``"point"`` (also ``"x"`` or ``"input"``). The object may carry a domain under ``"domain"``
  (see below): it is the default domain of the point when no other domain is given.

A **domain** is a box ``lower <= x <= upper``. Accepted files:

* ``.json`` -- ``{"lower": [...], "upper": [...]}`` (a number instead of a list applies to every
  input) or a list of ``[lower, upper]`` pairs, one per input;
* ``.npy`` -- an array of shape (2, n) (lower row, upper row) or (n, 2) (one pair per input);
* ``.csv`` -- two rows (lower, upper) of n values, or n rows of ``lower,upper``.

Every problem (missing file, wrong size, NaN or infinite value, inverted bounds, a point outside
its domain) is a :class:`~reluverify.errors.SpecError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError

POINT_KEYS = ("point", "x", "input")


@dataclass(frozen=True, eq=False)
class Domain:
    """The box ``lower <= x <= upper`` (float64 vectors of the network's input size)."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        lower = np.asarray(self.lower, dtype=np.float64).reshape(-1)
        upper = np.asarray(self.upper, dtype=np.float64).reshape(-1)
        if lower.shape != upper.shape:
            raise SpecError(f"domain bounds have {lower.size} and {upper.size} values")
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            bad = int(np.flatnonzero(~np.isfinite(lower) | ~np.isfinite(upper))[0])
            raise SpecError(f"domain bound of input {bad} is not a finite number")
        inverted = np.flatnonzero(lower > upper)
        if inverted.size:
            i = int(inverted[0])
            raise SpecError(f"domain of input {i} is empty: lower {lower[i]:g} > upper {upper[i]:g}")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    @property
    def size(self) -> int:
        return int(self.lower.shape[0])

    @property
    def widths(self) -> np.ndarray:
        return self.upper - self.lower

    def contains(self, x: np.ndarray) -> bool:
        x = np.asarray(x, dtype=np.float64)
        return bool(np.all(x >= self.lower) and np.all(x <= self.upper))

    def to_dict(self) -> dict:
        return {"lower": self.lower.tolist(), "upper": self.upper.tolist()}

    @staticmethod
    def of(value, size: int, what: str = "domain") -> "Domain":
        """A :class:`Domain` from a Domain, a ``(lower, upper)`` pair (numbers broadcast) or a dict."""
        if isinstance(value, Domain):
            domain = value
        elif isinstance(value, dict):
            if "lower" not in value or "upper" not in value:
                raise SpecError(f"{what}: expected the keys 'lower' and 'upper'")
            domain = _checked(_broadcast(value["lower"], size, what), _broadcast(value["upper"], size, what), what)
        else:
            try:
                lower, upper = value
            except (TypeError, ValueError):
                raise SpecError(f"{what}: expected a Domain, a (lower, upper) pair or a dict") from None
            domain = _checked(_broadcast(lower, size, what), _broadcast(upper, size, what), what)
        if domain.size != size:
            raise SpecError(f"{what}: the domain has {domain.size} inputs, the network has {size}")
        return domain


def _checked(lower, upper, what: str) -> Domain:
    try:
        return Domain(lower, upper)
    except SpecError as exc:
        raise SpecError(f"{what}: {exc}") from None


def _broadcast(value, size: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise SpecError(f"{what}: a bound is beyond the range of float64") from None
    except (TypeError, ValueError):
        raise SpecError(f"{what}: bounds must be numbers") from None
    if array.ndim == 0:
        return np.full(size, float(array))
    return array.reshape(-1)


# ------------------------------------------------------------------ reading
def read_json(path: str):
    """The parsed JSON of ``path``; broken JSON or a binary file is a one-line SpecError."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file") from None
    except RecursionError:
        raise SpecError(f"{path}: the JSON is nested too deeply") from None


def _numbers(value, path: str, what: str) -> np.ndarray:
    """A flat float64 array from nested lists of numbers; anything else is a SpecError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise SpecError(f"{path}: the {what} holds a number beyond the range of float64") from None
    except (TypeError, ValueError):
        raise SpecError(f"{path}: the {what} must be a list of numbers (nested lists are flattened)") from None
    if array.dtype == object:
        raise SpecError(f"{path}: the {what} must be a list of numbers (ragged nested lists)")
    return array.reshape(-1)


def _read_csv(path: str) -> list[list[float]]:
    try:
        with open(path) as handle:
            lines = handle.readlines()
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        row = []
        for cell in text.split(","):
            cell = cell.strip()
            if not cell:
                continue
            try:
                row.append(float(cell))
            except ValueError:
                raise SpecError(f"{path}: line {number}: {cell[:30]!r} is not a number") from None
        rows.append(row)
    if not rows:
        raise SpecError(f"{path}: the file holds no numbers")
    return rows


def read_npy(path: str) -> np.ndarray:
    """The float64 array of a ``.npy`` file; a broken or non-numeric file is a one-line SpecError.

    The header is read first: a dtype that is not numeric, or data shorter than the shape the
    header announces (a truncated file, or a damaged header claiming a huge shape), is refused
    before anything is allocated.
    """
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as handle:
            version = npy_format.read_magic(handle)
            read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            available = os.fstat(handle.fileno()).st_size - handle.tell()
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for broken headers
        raise SpecError(f"{path}: not a readable .npy array ({_first_line(exc)})") from None
    if dtype.hasobject or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise SpecError(f"{path}: the .npy file must hold an array of real numbers (it holds {dtype})")
    needed = math.prod(shape) * dtype.itemsize
    if available < needed:
        raise SpecError(f"{path}: truncated .npy file: its header announces shape {shape} ({needed} bytes), "
                        f"the file holds {available}")
    try:
        array = np.load(path, allow_pickle=False)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for broken files
        raise SpecError(f"{path}: not a readable .npy array ({_first_line(exc)})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        raise SpecError(f"{path}: the .npy file must hold a numeric array")
    return np.asarray(array, dtype=np.float64)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200] or type(exc).__name__


def _kind(path: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SpecError(f"{path}: no such file")
    if os.path.isdir(path):
        raise SpecError(f"{path}: is a directory, not a point or domain file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npy", ".csv", ".json"):
        raise SpecError(f"{path}: unknown file type {suffix or '(none)'!r}: use .npy, .csv or .json")
    return suffix


def read_point_file(path: str | os.PathLike) -> tuple[np.ndarray, dict | None]:
    """The flat point stored in ``path`` and the domain dict it carries (JSON only), unchecked."""
    path = os.fspath(path)
    kind = _kind(path)
    domain = None
    if kind == ".npy":
        values = read_npy(path).reshape(-1)
    elif kind == ".csv":
        values = np.asarray([v for row in _read_csv(path) for v in row], dtype=np.float64)
    else:
        data = read_json(path)
        if isinstance(data, dict):
            key = next((k for k in POINT_KEYS if k in data), None)
            if key is None:
                raise SpecError(f"{path}: expected a list of numbers or an object with a 'point' list")
            values = _numbers(data[key], path, "point")
            domain = data.get("domain")
            if domain is not None and not isinstance(domain, (dict, list)):
                raise SpecError(f"{path}: 'domain' must be an object with 'lower' and 'upper'")
        else:
            values = _numbers(data, path, "point")
    return values, domain


def load_point(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """The point in ``path`` as a flat float64 vector, checked for size (if given) and finiteness."""
    values, _ = read_point_file(path)
    return check_point(values, size, what=os.fspath(path))


def load_point_and_domain(path: str | os.PathLike, size: int) -> tuple[np.ndarray, Domain | None]:
    """The point in ``path`` and the domain it carries (JSON ``"domain"``), both checked."""
    values, domain = read_point_file(path)
    point = check_point(values, size, what=os.fspath(path))
    if domain is None:
        return point, None
    where = f"{os.fspath(path)}: domain"
    dom = _domain_from_json(domain, size, where)
    check_in_domain(point, dom, what=os.fspath(path))
    return point, dom


def _domain_from_json(data, size: int, where: str) -> Domain:
    if isinstance(data, dict):
        return Domain.of(data, size, where)
    pairs = _numbers(data, where, "domain")
    if pairs.size != 2 * size:
        raise SpecError(f"{where}: expected {size} [lower, upper] pairs, got {pairs.size} numbers")
    pairs = pairs.reshape(size, 2)
    return Domain.of((pairs[:, 0], pairs[:, 1]), size, where)


def load_domain(path: str | os.PathLike, size: int) -> Domain:
    """The box domain stored in ``path`` (see the module docstring for the layouts)."""
    path = os.fspath(path)
    kind = _kind(path)
    if kind == ".json":
        data = read_json(path)
        if isinstance(data, dict) and "domain" in data and "lower" not in data:
            data = data["domain"]
        if not isinstance(data, (dict, list)):
            raise SpecError(f"{path}: expected an object with 'lower' and 'upper' or a list of [lower, upper] pairs")
        return _domain_from_json(data, size, path)
    if kind == ".npy":
        array = read_npy(path)
    else:
        rows = _read_csv(path)
        if len({len(r) for r in rows}) != 1:
            raise SpecError(f"{path}: rows of different lengths")
        array = np.asarray(rows, dtype=np.float64)
    if array.ndim == 2 and array.shape == (2, size):
        return Domain.of((array[0], array[1]), size, path)
    if array.ndim == 2 and array.shape == (size, 2):
        return Domain.of((array[:, 0], array[:, 1]), size, path)
    raise SpecError(f"{path}: expected bounds of shape (2, {size}) or ({size}, 2), got {tuple(array.shape)}")


# ----------------------------------------------------------------- checking
def check_point(values, size: int | None, what: str = "point") -> np.ndarray:
    """``values`` as a flat float64 vector of ``size`` finite numbers, or a one-line SpecError."""
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
    return point


def check_in_domain(point: np.ndarray, domain: Domain, what: str = "point") -> None:
    outside = np.flatnonzero((point < domain.lower) | (point > domain.upper))
    if outside.size:
        i = int(outside[0])
        raise SpecError(
            f"{what}: the point is outside the domain: input {i} is {point[i]:g}, "
            f"the domain is [{domain.lower[i]:g}, {domain.upper[i]:g}]"
            + (f" ({outside.size} inputs outside)" if outside.size > 1 else "")
        )


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
