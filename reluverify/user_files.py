"""Reading a file the user named: a regular file, read in chunks up to a size cap.

A device (``/dev/zero``), a FIFO or a socket is refused before it is opened, so that reading it can
never block or go on forever; a regular file larger than the cap is refused before it is read. Text
is checked chunk by chunk as it is read: the first NUL byte, or the first bytes that are not UTF-8,
end the read at once with one line naming the offset. Every refusal is an instance of the
:class:`~reluverify.errors.ReluverifyError` class the caller passes, whose message starts with the
path.
"""

from __future__ import annotations

import codecs
import os
import stat

from reluverify.errors import ReluverifyError

CHUNK = 1 << 20
"""Bytes read at a time."""


def _size_text(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"


def _open_regular(path: str, limit: int, error: type[ReluverifyError], what: str):
    """An open binary handle on ``path`` once it is known to be a regular file of at most ``limit`` bytes."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: is a directory, not {what}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file (a device, a FIFO or a socket), not {what}")
    if info.st_size > limit:
        raise error(f"{path}: the file has {_size_text(info.st_size)}, more than the {_size_text(limit)} "
                    f"accepted for {what}")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None


def _chunks(path: str, limit: int, error: type[ReluverifyError], what: str):
    """``(offset, chunk)`` pairs of the regular file ``path``, :data:`CHUNK` bytes at a time, ending with
    one line as ``error`` past ``limit`` bytes."""
    offset = 0
    with _open_regular(path, limit, error, what) as handle:
        while True:
            try:
                chunk = handle.read(CHUNK)
            except OSError as exc:
                raise error(f"{path}: cannot read: {exc.strerror}") from None
            if not chunk:
                return
            if offset + len(chunk) > limit:  # the file grew after it was measured
                raise error(f"{path}: the file has more than the {_size_text(limit)} accepted for {what}")
            yield offset, chunk
            offset += len(chunk)


def read_bytes(path: str | os.PathLike, limit: int, error: type[ReluverifyError], what: str) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit`` of them), read at once into a buffer of
    the file's size, or one line as ``error``; ``what`` names the kind of file expected (``"an ONNX file"``)."""
    path = os.fspath(path)
    with _open_regular(path, limit, error, what) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(size + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > size:
        raise error(f"{path}: the file grew while it was read")
    return data


def read_text(path: str | os.PathLike, limit: int, error: type[ReluverifyError], what: str) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``limit`` bytes), or one line as ``error``
    at the first NUL byte or the first bytes that are not UTF-8."""
    path = os.fspath(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts = []
    for offset, chunk in _chunks(path, limit, error, what):
        nul = chunk.find(b"\0")
        if nul >= 0:
            raise error(f"{path}: not a text file (a NUL byte at offset {offset + nul}), not {what}")
        try:
            parts.append(decoder.decode(chunk))
        except UnicodeDecodeError as exc:
            raise error(f"{path}: not a UTF-8 text file (offset {offset + exc.start}), not {what}") from None
    try:
        parts.append(decoder.decode(b"", final=True))
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file (it ends inside a character), not {what}") from None
    return "".join(parts)
