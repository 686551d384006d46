"""Checkpoints: one search's open work kept in a file, so that a killed run resumes where it was.

A checkpoint file is one ``.npz`` archive (numpy's zip of ``.npy`` arrays, read with
``allow_pickle=False``: nothing in it is ever unpickled) holding a JSON *manifest* (the array
``manifest``, UTF-8 bytes) and the arrays of its entries. One entry per search, named by the search's
*key*: a sha256 over what defines the search -- the strategy, the chain's weights and biases, the
targets' rows and right-hand sides, the search's box or region (input rows included), and the options
that change what a refutation means (the tolerances, whether a proof is recorded). An entry is

* ``open``: the search's pool of open work items as arrays (the strategy's own fields: sub-problems
  or boxes), its refuted share ``proven`` (a work item ``d`` splits deep weighs ``2^-d``), the reasons
  of items it left undecided, and counts (items processed so far, seconds of search);
* ``unsat``: the search ended with its whole tree refuted; a rerun answers ``unsat`` at once.

A file is written whole and atomically (a temporary file in the same folder, flushed and synced, then
``os.replace``), so a run killed while saving leaves the previous checkpoint intact; a save keeps the
entries of other searches. Processes that save to one file at the same moment may drop each other's
latest entry (never corrupt the file): the searches of one command save from one process.

Soundness invariant: what a search resumes from is exactly one pool plus the refuted share saved
together at one moment (a consistent snapshot: in one process, between two rounds of the search; shared
among processes, once no work item is in flight, :mod:`~reluverify.solver.sharing`), so the pool's
weight plus ``proven`` is still 1, and ``unsat`` still needs the refuted share to reach exactly 1
(:func:`~reluverify.solver.search.exhausted`). An entry is used only by the search whose key it carries:
a checkpoint of another query never changes this query's answer. A file that is not a readable
checkpoint is an error naming the file (:class:`~reluverify.errors.SpecError`), never ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field

import numpy as np

from reluverify.errors import ReluverifyError, SpecError

FORMAT = "reluverify-checkpoint"
VERSION = 1
OPEN, UNSAT = "open", "unsat"


@dataclass
class Entry:
    """One search's entry (see the module docstring)."""

    status: str
    """``open`` or ``unsat``."""
    strategy: str
    proven: float = 0.0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    """The open work items as the strategy's arrays, one row each (empty for ``unsat``)."""
    open: int = 0
    """Work items in ``arrays``."""
    done: int = 0
    """Work items processed before the save, over every run that led to it, as the runs' statistics
    count them (for information only: a query with several searches counts them all)."""
    seconds: float = 0.0
    """Seconds of search before the save (over every run that led to it)."""
    undecided: list[str] = field(default_factory=list)

    def manifest(self, key: str, names: list[str]) -> dict:
        return {"key": key, "status": self.status, "strategy": self.strategy, "proven": self.proven,
                "open": self.open, "done": self.done, "seconds": self.seconds, "undecided": self.undecided,
                "arrays": names}


def search_key(strategy: str, chain, targets, arrays, options) -> str:
    """The key of a search: sha256 over ``strategy``, the chain's weights and biases, the ``targets``'
    rows and right-hand sides, ``arrays`` (the box or region; None for an absent one) and the options
    that change what a refutation means (tolerances, proof)."""
    from reluverify.solver.facts import chain_fingerprint

    digest = hashlib.sha256()
    digest.update(f"{FORMAT} {VERSION} {strategy} {chain_fingerprint(chain)}".encode())
    rows = [a for t in targets for a in (t.rows, t.rhs)]
    for a in [np.array([len(targets)]), *rows, *arrays]:
        if a is None:
            digest.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    digest.update(json.dumps({"tolerances": asdict(options.tolerances), "proof": bool(options.proof)},
                             sort_keys=True).encode())
    return digest.hexdigest()


# ------------------------------------------------------------------ the file
def _broken(path: str, why: str) -> SpecError:
    return SpecError(f"{path}: not a readable reluverify checkpoint ({why})")


def _manifest(path: str, archive) -> list[dict]:
    if "manifest" not in archive.files:
        raise _broken(path, "no manifest")
    raw = archive["manifest"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _broken(path, "no manifest")
    manifest = json.loads(raw.tobytes().decode("utf-8"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _broken(path, "another kind of .npz file")
    if manifest.get("version") != VERSION:
        raise _broken(path, f"format version {manifest.get('version')!r}, this reluverify reads {VERSION}")
    entries = manifest.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("key"), str)
                                                and isinstance(e.get("arrays"), list) for e in entries):
        raise _broken(path, "a damaged manifest")
    for number, e in enumerate(entries):
        missing = [name for name in e["arrays"] if f"e{number}.{name}" not in archive.files]
        if missing or e.get("status") not in (OPEN, UNSAT):
            raise _broken(path, "a damaged entry")
    return entries


def _open(path: str):
    """The archive at ``path`` (a regular file), or None when there is no file yet."""
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the checkpoint: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(f"{path}: is a directory, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(f"{path}: not a regular file, so not a checkpoint")
    if info.st_size == 0:
        raise _broken(path, "an empty file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _broken(path, _why(exc)) from None


def _why(exc: BaseException) -> str:
    if "pickle" in str(exc):  # numpy's word for bytes that are neither .npy nor .npz
        return "not an .npz archive"
    if isinstance(exc, (zipfile.BadZipFile, EOFError)):
        return "a truncated or damaged .npz archive"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}".rstrip(": ")


def check(path: str) -> None:
    """Raise :class:`SpecError` (one line naming ``path``) unless ``path`` is absent (a new checkpoint)
    or a readable checkpoint file (every array read once, one at a time) whose folder can take the
    next save."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SpecError(f"{path}: the checkpoint's folder {folder} does not exist")
    read(path, want=lambda key: False, verify=True)


def read(path: str, want=None, verify: bool = False) -> dict[str, Entry]:
    """Every entry of the checkpoint at ``path`` by key ({} when there is no file); the arrays of the
    entries whose key ``want(key)`` accepts are read, the others' left empty (all when ``want`` is None);
    with ``verify`` the others' are read too, and dropped (a damaged array is found now)."""
    archive = _open(path)
    if archive is None:
        return {}
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _broken(path, "a single .npy array, not an .npz archive")
    try:
        with archive:
            entries = {}
            for number, e in enumerate(_manifest(path, archive)):
                chosen = want is None or want(e["key"])
                arrays = {name: archive[f"e{number}.{name}"] for name in e["arrays"]} if chosen else {}
                if verify and not chosen:
                    for name in e["arrays"]:
                        archive[f"e{number}.{name}"]
                entries[e["key"]] = Entry(e["status"], str(e.get("strategy", "")), float(e.get("proven", 0.0)), arrays,
                                          int(e.get("open", 0)), int(e.get("done", 0)), float(e.get("seconds", 0.0)),
                                          [str(u) for u in e.get("undecided", [])])
            return entries
    except ReluverifyError:
        raise
    except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise _broken(path, _why(exc)) from None


def write(path: str, key: str, entry: Entry) -> None:
    """Save ``entry`` as the entry of ``key`` in the checkpoint at ``path``, keeping its other entries;
    atomically (see the module docstring)."""
    entries = read(path, want=lambda k: k != key)  # the old arrays of this key are not read
    entries[key] = entry
    arrays = {}
    manifest = []
    for number, (k, e) in enumerate(entries.items()):
        manifest.append(e.manifest(k, list(e.arrays)))
        for name, a in e.arrays.items():
            arrays[f"e{number}.{name}"] = a
    text = json.dumps({"format": FORMAT, "version": VERSION, "entries": manifest})
    arrays["manifest"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        os.fchmod(descriptor, _mode(path))  # as an ordinary new file would be (mkstemp's is private)
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        temporary = None
        _sync_folder(folder)
    except OSError as exc:
        raise ReluverifyError(f"{path}: cannot write the checkpoint: {exc.strerror or exc}") from None
    finally:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass


def _mode(path: str) -> int:
    """The permissions of the checkpoint at ``path``, or those the umask gives a new file."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_folder(folder: str) -> None:
    """Make the rename durable (where the platform allows a folder to be synced)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def fits(arrays: dict[str, np.ndarray], template: dict[str, np.ndarray]) -> bool:
    """Whether saved rows ``arrays`` are laid out as ``template`` (rows a search makes): the same names,
    types and shapes but the first, and one row count for all."""
    if set(arrays) != set(template):
        return False
    counts = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
    return len(counts) == 1 and -1 not in counts and all(
        arrays[name].dtype == t.dtype and arrays[name].shape[1:] == t.shape[1:] for name, t in template.items())


# ------------------------------------------------------------------ one search's entry
class SearchCheckpoint:
    """The entry of one search in a checkpoint file: what the search resumes from, and its saves.

    ``unit`` names the search's work items in messages (``sub-problems``, ``boxes``) and ``whole`` what
    ``proven`` is a share of (``the search tree``, ``the input box``)."""

    def __init__(self, path: str, every: float, key: str, strategy: str, unit: str, whole: str) -> None:
        self.path, self.every, self.key, self.strategy = path, every, key, strategy
        self.unit, self.whole = unit, whole
        self.last = time.monotonic()
        self.started = time.monotonic()
        self.before = (0, 0.0)  # items done and seconds spent by the runs this one resumes
        self.saves = 0

    @classmethod
    def of(cls, options, strategy: str, chain, targets, arrays, unit: str, whole: str) -> "SearchCheckpoint | None":
        """The entry of the search ``strategy`` on ``chain``, ``targets`` and ``arrays`` (:func:`search_key`)
        in the checkpoint of ``options``; None when no checkpoint is asked for."""
        if options.checkpoint.path is None:
            return None
        return cls(options.checkpoint.path, options.checkpoint.every,
                   search_key(strategy, chain, targets, arrays, options), strategy, unit, whole)

    def load(self) -> Entry | None:
        """This search's entry in the file (None when it has none)."""
        return read(self.path, want=lambda k: k == self.key).get(self.key)

    def announce(self, entry: Entry, stream=None) -> None:
        """Say in one line on ``stream`` (stderr) that the search resumes from ``entry``; it counts on from
        the entry's items and seconds."""
        stream = stream or sys.stderr
        if entry.status == UNSAT:
            print(f"resuming from {self.path}: this search was finished, unsat", file=stream)
        else:
            self.before = (entry.done, entry.seconds)
            print(f"resuming from {self.path}: {100.0 * entry.proven:.1f}% of {self.whole} refuted, "
                  f"{entry.open:,} {self.unit} open", file=stream)
        stream.flush()

    def refuse(self, entry: Entry, why: str, stream=None) -> None:
        """Say on ``stream`` (stderr) that this search's entry is not used (``why``), so it starts afresh."""
        stream = stream or sys.stderr
        print(f"reluverify: {self.path}: the saved entry of this search is not used ({why}); starting afresh",
              file=stream)
        stream.flush()

    def due(self) -> bool:
        """A save is due (``every`` seconds after the last one)."""
        return time.monotonic() - self.last >= self.every

    def save(self, arrays: dict[str, np.ndarray], proven: float, undecided: list[str], done: int) -> None:
        """Save the search's open work: ``arrays`` (its pool, one row per open item) and ``proven``, taken
        at one moment; ``done``: items processed by this run."""
        count = next(iter(arrays.values())).shape[0] if arrays else 0
        entry = Entry(OPEN, self.strategy, float(proven), arrays, int(count), self.before[0] + int(done),
                      self.before[1] + time.monotonic() - self.started, list(dict.fromkeys(undecided)))
        write(self.path, self.key, entry)
        self.last = time.monotonic()
        self.saves += 1

    def finished(self, done: int) -> None:
        """The search ended ``unsat`` after processing ``done`` items in this run: a rerun answers so at once."""
        write(self.path, self.key, Entry(UNSAT, self.strategy, 1.0, {}, 0, self.before[0] + int(done),
                                         self.before[1] + time.monotonic() - self.started))
        self.saves += 1
