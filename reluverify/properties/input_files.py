"""The file readers under points, labels and domains: JSON, ``.npy``, ``.npz`` and CSV, read safely.

Each reader returns plain values (parsed JSON, float64 arrays, rows of numbers with their line
numbers) or raises a :class:`~reluverify.errors.SpecError` with one line naming the file: a missing
file, a folder, a device or a FIFO, broken or too deeply nested JSON, a binary file read as text, a ``.npy`` array that
is not real numbers or is shorter than its header announces (checked before anything is
allocated), an archive that is not ``.npz``. What the values mean is for
:mod:`reluverify.properties.inputs` (points, labels) and :mod:`reluverify.properties.domains`.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from reluverify.errors import SpecError

SUFFIXES = (".npy", ".csv", ".json", ".npz")


def file_kind(path: str, what: str, suffixes: tuple[str, ...] = SUFFIXES) -> str:
    """The suffix of ``path`` (one of ``suffixes``), after checking the file exists and is a regular file
    (a device or a FIFO, which could block or never end, is refused before it is opened)."""
    if not os.path.exists(path):
        raise SpecError(f"{path}: no such file")
    if os.path.isdir(path):
        raise SpecError(f"{path}: is a directory, not a {what} file")
    if not os.path.isfile(path):
        raise SpecError(f"{path}: not a regular file (a device, a FIFO or a socket), not a {what} file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in suffixes:
        names = ", ".join(suffixes[:-1]) + " or " + suffixes[-1]
        raise SpecError(f"{path}: unknown {what} file type {suffix or '(none)'!r}: use {names}")
    return suffix


def first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200] or type(exc).__name__


def number_text(value) -> str:
    """``value`` with the shortest digits that read back as the same float64 (``1.0000001``, ``1``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


# ------------------------------------------------------------------ JSON
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
    except ValueError as exc:  # an integer of more digits than Python converts
        raise SpecError(f"{path}: not valid JSON ({first_line(exc)})") from None


def json_numbers(value, where: str, what: str) -> np.ndarray:
    """A flat float64 array from nested lists of numbers; anything else is a SpecError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise SpecError(f"{where}: the {what} holds a number beyond the range of float64") from None
    except (TypeError, ValueError):
        raise SpecError(f"{where}: the {what} must be a list of numbers (nested lists are flattened)") from None
    if array.dtype == object:
        raise SpecError(f"{where}: the {what} must be a list of numbers (ragged nested lists)")
    return array.reshape(-1)


# ------------------------------------------------------------------ CSV
def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv_rows(path: str) -> list[tuple[int, list[float]]]:
    """The rows of numbers of a CSV file, each with its line number.

    Cells are separated by commas (a trailing comma is allowed); blank lines and lines starting with
    ``#`` are skipped, and a first line made only of names (``x0,x1,...``) is a header. Any other
    cell that is not a number is an error naming its line.
    """
    try:
        with open(path) as handle:
            content = list(enumerate(handle, start=1))
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file") from None
    rows, first = [], True
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
        rows.append((number, row))
    return rows


# ------------------------------------------------------------------ .npy and .npz
def _array(path: str, opener, available: int) -> np.ndarray:
    """The real-valued array of a ``.npy`` stream (``opener()`` opens it at its start), checked from
    its header first: a non-numeric dtype, or fewer than the announced bytes, is refused unread."""
    from numpy.lib import format as npy_format

    try:
        with opener() as handle:
            version = npy_format.read_magic(handle)
            read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            available -= handle.tell()
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for broken headers
        raise SpecError(f"{path}: not a readable .npy array ({first_line(exc)})") from None
    if dtype.hasobject or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise SpecError(f"{path}: the array must hold real numbers (it holds {dtype})")
    needed = math.prod(shape) * dtype.itemsize
    if available < needed:
        raise SpecError(f"{path}: truncated .npy array: its header announces shape {shape} ({needed} bytes), "
                        f"the file holds {available}")
    try:
        with opener() as handle:
            array = npy_format.read_array(handle, allow_pickle=False)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for broken files
        raise SpecError(f"{path}: not a readable .npy array ({first_line(exc)})") from None
    return np.asarray(array, dtype=np.float64)


def read_npy(path: str) -> np.ndarray:
    """The float64 array of a ``.npy`` file; a broken or non-numeric file is a one-line SpecError."""
    return _array(path, lambda: open(path, "rb"), os.path.getsize(path))


class NpzArrays:
    """The arrays of an ``.npz`` archive by name, each read (and checked as :func:`read_npy` does)
    only when asked for."""

    def __init__(self, path: str) -> None:
        import zipfile

        self.path = path
        try:
            with zipfile.ZipFile(path) as archive:
                self._sizes = {info.filename[:-4]: info.file_size for info in archive.infolist()
                               if info.filename.endswith(".npy")}
        except Exception as exc:  # noqa: BLE001 - zipfile raises several types for broken archives
            raise SpecError(f"{path}: not a readable .npz archive ({first_line(exc)})") from None
        if not self._sizes:
            raise SpecError(f"{path}: the .npz archive holds no arrays")

    @property
    def names(self) -> list[str]:
        return list(self._sizes)

    def named(self, names: tuple[str, ...]) -> str | None:
        """The first of ``names`` that the archive holds."""
        return next((name for name in names if name in self._sizes), None)

    def __getitem__(self, name: str) -> np.ndarray:
        import zipfile

        def opener():
            archive = zipfile.ZipFile(self.path)
            handle = archive.open(name + ".npy")
            return _Member(archive, handle)

        return _array(f"{self.path}: array {name!r}", opener, self._sizes[name])


class _Member:
    """A member of a zip archive opened for reading; closing it closes the archive too."""

    def __init__(self, archive, handle) -> None:
        self.archive, self.handle = archive, handle

    def __enter__(self):
        return self.handle

    def __exit__(self, *exc) -> None:
        self.handle.close()
        self.archive.close()
