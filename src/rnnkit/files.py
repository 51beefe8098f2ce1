"""Reading files that a user or a model directory names, safely: regular files only, bounded.

Every file rnnkit reads on a user's behalf (``--data``, a model directory's JSON and weights)
goes through ``read_regular``: a FIFO, a device (``/dev/zero``, ``/dev/stdin``), a socket or a
directory is refused before a byte is read, and a file larger than the limit for its format is
refused from its size, so a hostile path can neither hang rnnkit nor exhaust its memory.

    data = read_regular(path, limit=2**30, what="--data", error=DataError)

The caller passes its own error class (``DataError``, ``ModelDirError``), so each layer keeps
its own kind of error while the checks exist once.
"""

from __future__ import annotations

import os
import stat

#: the default limit of ``read_regular``: larger inputs are refused with their size
DEFAULT_LIMIT = 4 * 2**30


def human_size(n: int) -> str:
    """``1536`` → ``'1.5 KB'``: sizes in messages."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path, what: str, error: type[Exception] = ValueError) -> int:
    """A read-only file descriptor of ``path``, which must be a regular file.

    The file is opened without blocking (a FIFO with no writer would block ``open`` itself)
    and checked with ``fstat`` on the descriptor, so a path swapped between check and open
    cannot slip through. Errors are ``error("{what}: {path} ...")``.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what}: {path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{what}: {path}: is a directory, expected a file") from None
    except OSError as exc:
        raise error(f"{what}: {path}: cannot be opened ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{what}: {path}: is {_kind(mode)}, expected a regular file")
    os.set_blocking(fd, True)
    return fd


def read_regular(path, limit: int = DEFAULT_LIMIT, what: str = "file", error: type[Exception] = ValueError) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (a larger file is an error)."""
    fd = open_regular(path, what, error)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise error(f"{what}: {os.fspath(path)}: is {human_size(size)}, more than the {human_size(limit)} "
                        f"this kind of file may have")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)  # a file that grew after fstat is still cut at the limit
    except OSError as exc:
        raise error(f"{what}: {os.fspath(path)}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{what}: {os.fspath(path)}: is more than the {human_size(limit)} this kind of file may have")
    return data
