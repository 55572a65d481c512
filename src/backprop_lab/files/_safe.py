"""Touching the filesystem safely: reads that never block, writes whole or not at all, and one
line for every way a directory can refuse a write.

A run reads only regular files, opened with ``O_NONBLOCK``: a FIFO, socket or
device put where a run's file should be is refused at once instead of blocking
the run forever. Appends go through the same opening, so a FIFO without a
reader is refused too. :func:`check_directory` says, before anything is
written, why a path cannot be a directory for files (it is a file, lies under
one, or lies in a kernel filesystem such as /proc), and :func:`os_error_line`
turns an ``OSError`` met while writing (a read-only filesystem, a full disk)
into one line naming the path and the cause.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

#: Filesystems of the kernel's own, where no run belongs (``/proc``, ``/sys``, ``/dev``, ...).
KERNEL_FILESYSTEMS = frozenset(
    "proc sysfs devtmpfs devpts cgroup cgroup2 debugfs tracefs securityfs pstore bpf configfs "
    "fusectl mqueue hugetlbfs binfmt_misc autofs efivarfs rpc_pipefs nsfs".split()
)

_HINTS = {
    errno.EROFS: "the filesystem is mounted read-only",
    errno.ENOSPC: "no space is left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted there",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENXIO: "it is a FIFO or device, not a regular file",
}


class NotARegularFile(OSError):
    """A path that holds a FIFO, socket, device or directory where a regular file belongs."""


def os_error_line(err: OSError, path: str | os.PathLike | None = None) -> str:
    """An ``OSError`` as one line: the path, what failed, and why.

    >>> import errno
    >>> os_error_line(OSError(errno.ENOSPC, "No space left on device", "/data/run/losses.csv"))
    'cannot write /data/run/losses.csv: no space is left on the device (No space left on device)'
    """
    where = path if path is not None else (err.filename or "")
    cause = _HINTS.get(err.errno or 0, "")
    detail = err.strerror or str(err) or type(err).__name__
    what = f"{cause} ({detail})" if cause and cause.lower() != detail.lower() else detail
    verb = "read" if isinstance(err, NotARegularFile) else "write"
    return f"cannot {verb} {where}: {what}"


def _unescape(field: str) -> str:
    """A mount point as /proc/self/mounts writes it (spaces as \\040, ...), decoded."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: str | os.PathLike) -> str | None:
    """The type of the filesystem ``path`` would lie on (from /proc/self/mounts), or None."""
    target = os.path.realpath(path)
    try:
        lines = read_regular("/proc/self/mounts").decode(errors="replace").splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = _unescape(fields[1])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind


def check_directory(path: str | os.PathLike, key: str) -> None:
    """Raise :class:`ValueError`, with one line, when ``path`` cannot be a directory for files.

    Arguments:
        path: the directory (it need not exist yet).
        key: the config key that chose it, named in the message.

    Raises:
        ValueError: ``path`` is a file, lies under a file, or lies in a kernel filesystem.
    """
    p = Path(path)
    for part in (p, *p.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                where = "is a file" if part == p else f"lies under {part}, which is a file"
                raise ValueError(f"{key}={str(p)!r} {where}; choose a directory")
            break
    kind = filesystem_type(p)
    if kind in KERNEL_FILESYSTEMS:
        raise ValueError(
            f"{key}={str(p)!r} lies in a {kind} filesystem of the kernel's, which holds no "
            "files of a run; choose a directory on a disk"
        )


def _open_regular(path: str | os.PathLike, flags: int) -> int:
    """``os.open`` with ``O_NONBLOCK``, then refuse anything but a regular file."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(errno.ENXIO, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file; a FIFO, socket or device raises :class:`NotARegularFile`
    at once (never blocks)."""
    with os.fdopen(_open_regular(path, os.O_RDONLY), "rb") as f:
        return f.read()


def append_regular(path: str | os.PathLike, data: bytes) -> None:
    """Append ``data`` to a regular file (created when missing, mode 0666 & ~umask) and fsync."""
    try:
        with os.fdopen(_open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise _named(err, path) from None


def _named(err: OSError, path: str | os.PathLike) -> OSError:
    """``err`` with the path it happened at (a failed write names none by itself)."""
    if err.filename is None:
        err.filename = str(path)
    return err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (temp file, fsync, rename), mode 0666 & ~umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _named(err, path) from None
        raise


def write_json(path: Path, obj: dict) -> None:
    """A JSON file, written atomically."""
    write_atomic(Path(path), (json.dumps(obj, indent=2) + "\n").encode())
