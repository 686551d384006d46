"""Memory limits (``--max-memory SIZE``): a clear error instead of the kernel's OOM killer.

:func:`set_limit` caps the process's data segment (``RLIMIT_DATA``: heap and private writable
mappings, where numpy, onnxruntime and Python keep their data). An allocation beyond it fails at
once -- numpy and Python raise :class:`MemoryError` -- long before the machine runs out of memory.
``RLIMIT_AS`` is not used: it also counts address space that libraries reserve without using
(thread stacks, allocator arenas, shared libraries), so a limit on it fails far below the
memory really used. The limit holds per process; worker processes forked afterwards inherit it
(the Ray workers of a sweep set it themselves).

:func:`out_of_memory` is the one-line :class:`~reluverify.errors.MemoryLimitError` that the
command line, the worker pools and the sweep report when an allocation fails: it names the limit
when one is set. Invariant: the limit of a process is set once, and :func:`current_limit` returns
the size as the user wrote it (``"1G"``) in it and in every process forked from it.
"""

from __future__ import annotations

import re

from reluverify.errors import MemoryLimitError

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
MINIMUM = 64 * 2**20
"""Smaller limits are refused: Python alone needs more than this."""

_ACTIVE: list[str] = []


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 128 * 2**20) -> bool:
    """Ask the C allocator (glibc) to serve blocks below ``mmap_threshold`` from its heap and to keep up to
    ``trim_threshold`` of freed heap for reuse. By default glibc maps every block above 128 KB afresh and
    returns it on free, so each numpy temporary of the bound passes (a few hundred KB on ACAS Xu) costs
    its pages' faults again: about 5% of a whole ACAS Xu run. Returns whether the allocator took the
    settings (False where there is no glibc ``mallopt``; nothing changes then). Memory limits are not
    affected: heap is counted in ``RLIMIT_DATA`` as mappings are."""
    import ctypes  # here: only the command line tunes the allocator

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional unit K, M, G or T (powers of 1024): ``512M``, ``2.5G``."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size (use e.g. 512M, 1G or 2.5G)")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size < MINIMUM:
        raise ValueError(f"{text!r} is too small: reluverify needs at least 64M")
    return size


PRELOAD = ("numpy", "scipy.linalg", "scipy.optimize", "onnx", "onnxruntime", "threadpoolctl", "tqdm")
"""Imported before the limit is set: importing scipy with too little room left has been seen to spin
instead of failing, and these are needed by every long-running command anyway."""


def set_limit(text: str) -> None:
    """Cap this process's data segment at the size ``text`` (see the module docstring).

    The libraries every long-running command needs are imported (and BLAS initialised) first, so
    the limit applies to the work itself; a limit below what the process already uses is an error.
    """
    import importlib
    import resource

    size = parse_size(text)
    for name in PRELOAD:
        importlib.import_module(name)
    import numpy as np

    np.ones((64, 64)) @ np.ones((64, 64))  # BLAS allocates its buffers on first use
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY and size > hard:
        raise MemoryLimitError(f"--max-memory {text}: above this system's hard limit of {hard // 2**20}M")
    used = data_size()
    if used is not None and used + 32 * 2**20 > size:
        raise MemoryLimitError(f"--max-memory {text}: reluverify already uses {used // 2**20}M once loaded; "
                               "give it more")
    resource.setrlimit(resource.RLIMIT_DATA, (size, hard))
    _ACTIVE[:] = [str(text).strip()]


def data_size() -> int | None:
    """Bytes in this process's data segment now (``VmData``; None where /proc is missing)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def current_limit() -> str | None:
    """The limit set in this process (or inherited from the process that forked it), as written."""
    return _ACTIVE[0] if _ACTIVE else None


def out_of_memory(detail: str = "") -> MemoryLimitError:
    """The one-line error for an allocation that failed; it names the limit when one is set."""
    limit = current_limit()
    what = f"out of memory{': ' + detail if detail else ''}"
    if limit is not None:
        return MemoryLimitError(f"{what}: the command needs more than the memory limit {limit} (--max-memory)")
    return MemoryLimitError(f"{what}: the command needs more memory than this machine could give it")


def is_allocation_failure(message: str) -> bool:
    """True for the messages of native libraries (onnxruntime, z3) whose allocation failed."""
    lowered = message.lower()
    return any(sign in lowered for sign in ("bad_alloc", "bad allocation", "failed to allocate", "out of memory",
                                            "unable to allocate", "cannot map zero-fill pages",
                                            "failed to map segment"))
