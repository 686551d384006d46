"""Box domains ``lower <= x <= upper``: the value, the ``LO:HI`` shorthand, domain files, and points checked inside.

A domain is given as

* the **shorthand** ``LO:HI`` -- the same interval for every input (``0:1``) -- or one ``LO:HI`` per
  input separated by commas (``0:1,0:1,-1:1``; exactly one interval per input);
* a **file**:

  - ``.json`` -- ``{"lower": [...], "upper": [...]}`` (a number instead of a list applies to every
    input), a list of ``[lower, upper]`` pairs, one per input, or an object with either under
    ``"domain"`` (a point file that carries its domain);
  - ``.npy`` -- an array of shape (2, n) (lower row, upper row) or (n, 2) (one pair per input);
  - ``.csv`` -- two rows (lower, upper) of n values, or n rows of ``lower,upper``;
  - ``.npz`` -- the arrays ``lower`` and ``upper``.

:func:`read_domain` takes either: text that names a file, or ends in one of the suffixes, is a file;
any other text is the shorthand. Every problem (a missing file, a wrong count, a bound that is not a
finite number or lies beyond float32's range, an empty interval) is a one-line :class:`~reluverify.errors.SpecError` naming the
file or the option; :func:`check_in_domain` names the first input outside the domain with enough
digits to see the difference (``1.0000001 > 1``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.query import BEYOND_FLOAT32, LARGEST_INPUT
from reluverify.properties.input_files import (NpzArrays, file_kind, json_numbers, number_text, read_csv_rows,
                                               read_json, read_npy)

SHORTHAND = "LO:HI for every input (e.g. 0:1), or one LO:HI per input separated by commas"


@dataclass(frozen=True, eq=False)
class Domain:
    """The box ``lower <= x <= upper`` (float64 vectors of the network's input size; finite bounds of
    magnitude at most :data:`~reluverify.query.LARGEST_INPUT`, float32's range)."""

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
        big = np.flatnonzero(np.maximum(np.abs(lower), np.abs(upper)) > LARGEST_INPUT)
        if big.size:
            i = int(big[0])
            value = lower[i] if abs(lower[i]) > LARGEST_INPUT else upper[i]
            raise SpecError(f"domain bound of input {i} is {value:g}, {BEYOND_FLOAT32}")
        inverted = np.flatnonzero(lower > upper)
        if inverted.size:
            i = int(inverted[0])
            raise SpecError(f"domain of input {i} is empty: lower {number_text(lower[i])} > upper "
                            f"{number_text(upper[i])}")
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


def check_in_domain(point: np.ndarray, domain: Domain, what: str = "point") -> None:
    """A one-line SpecError naming the first input of ``point`` outside ``domain``, if any."""
    outside = np.flatnonzero((point < domain.lower) | (point > domain.upper))
    if outside.size:
        i = int(outside[0])
        value, lower, upper = (number_text(v) for v in (point[i], domain.lower[i], domain.upper[i]))
        relation = f"< {lower}" if point[i] < domain.lower[i] else f"> {upper}"
        raise SpecError(
            f"{what}: the point is outside the domain: input {i} is {value} {relation}, "
            f"the domain is [{lower}, {upper}]"
            + (f" ({outside.size} inputs outside)" if outside.size > 1 else "")
        )


# ------------------------------------------------------------------ the shorthand
def parse_domain(text: str, size: int, what: str = "--domain") -> Domain:
    """The domain written ``LO:HI`` (every input) or ``LO:HI,LO:HI,...`` (one interval per input)."""
    shown = repr(text) if len(text) <= 60 else repr(text[:57] + "...")
    intervals = []
    for index, part in enumerate(text.split(",")):
        low, colon, high = part.partition(":")
        where = f"{what} {shown}" + (f": interval {index}" if "," in text else "")
        if not colon or ":" in high:
            raise SpecError(f"{where}: {part.strip()[:30]!r} is not LO:HI (give {SHORTHAND}, or a file)")
        bounds = []
        for bound in (low, high):
            try:
                number = float(bound)
            except ValueError:
                raise SpecError(f"{where}: {bound.strip()[:30]!r} is not a number") from None
            if not np.isfinite(number):
                raise SpecError(f"{where}: {bound.strip()[:30]!r} is not a finite number")
            bounds.append(number)
        if bounds[0] > bounds[1]:
            raise SpecError(f"{where}: the interval is empty: {number_text(bounds[0])} > {number_text(bounds[1])}")
        intervals.append(bounds)
    if len(intervals) == 1:
        intervals = intervals * size
    if len(intervals) != size:
        raise SpecError(f"{what} {shown}: {len(intervals)} intervals for a network with {size} inputs "
                        "(give one LO:HI for every input, or one for all)")
    pairs = np.asarray(intervals, dtype=np.float64).reshape(size, 2)
    return Domain(pairs[:, 0], pairs[:, 1])


def names_a_file(text: str) -> bool:
    """Whether ``text`` is read as a domain file (it exists, or ends in a file suffix) rather than LO:HI."""
    return os.path.exists(text) or os.path.splitext(text)[1].lower() in (".json", ".npy", ".csv", ".npz")


def read_domain(text, size: int, what: str = "--domain") -> Domain:
    """The domain ``text`` gives: a file (see the module docstring), else the ``LO:HI`` shorthand."""
    text = os.fspath(text)
    if names_a_file(text):
        return load_domain(text, size)
    if ":" not in text:
        shown = repr(text) if len(text) <= 60 else repr(text[:57] + "...")
        raise SpecError(f"{what} {shown}: no such file, and not LO:HI (give {SHORTHAND}, or a file)")
    return parse_domain(text, size, what)


# ------------------------------------------------------------------ files
def domain_from_json(data, size: int, where: str) -> Domain:
    """The domain of a JSON value: an object with ``lower`` and ``upper``, or ``[lower, upper]`` pairs."""
    if isinstance(data, dict):
        return Domain.of(data, size, where)
    if not isinstance(data, list):
        raise SpecError(f"{where}: expected an object with 'lower' and 'upper' or a list of [lower, upper] pairs")
    pairs = json_numbers(data, where, "domain")
    if pairs.size != 2 * size:
        raise SpecError(f"{where}: expected {size} [lower, upper] pairs, got {pairs.size} numbers")
    pairs = pairs.reshape(size, 2)
    return Domain.of((pairs[:, 0], pairs[:, 1]), size, where)


def domain_from_npz(arrays: NpzArrays, size: int) -> Domain | None:
    """The domain of an ``.npz`` archive's ``lower`` and ``upper`` arrays; None when it has neither."""
    present = [name for name in ("lower", "upper") if name in arrays.names]
    if not present:
        return None
    if len(present) == 1:
        raise SpecError(f"{arrays.path}: the archive has the array {present[0]!r} but not "
                        f"{'upper' if present[0] == 'lower' else 'lower'!r}")
    return Domain.of((arrays["lower"], arrays["upper"]), size, arrays.path)


def load_domain(path: str | os.PathLike, size: int) -> Domain:
    """The box domain stored in ``path`` (see the module docstring for the layouts)."""
    path = os.fspath(path)
    kind = file_kind(path, "domain")
    if kind == ".json":
        data = read_json(path)
        if isinstance(data, dict) and "domain" in data and "lower" not in data:
            data = data["domain"]
        return domain_from_json(data, size, path)
    if kind == ".npz":
        domain = domain_from_npz(NpzArrays(path), size)
        if domain is None:
            raise SpecError(f"{path}: expected the arrays 'lower' and 'upper'")
        return domain
    if kind == ".npy":
        array = read_npy(path)
    else:
        rows = [row for _, row in read_csv_rows(path)]
        if not rows:
            raise SpecError(f"{path}: the file holds no numbers")
        if len({len(r) for r in rows}) != 1:
            raise SpecError(f"{path}: rows of different lengths")
        array = np.asarray(rows, dtype=np.float64)
    if array.ndim == 2 and array.shape == (2, size):
        return Domain.of((array[0], array[1]), size, path)
    if array.ndim == 2 and array.shape == (size, 2):
        return Domain.of((array[:, 0], array[:, 1]), size, path)
    raise SpecError(f"{path}: expected bounds of shape (2, {size}) or ({size}, 2), got {tuple(array.shape)}")
