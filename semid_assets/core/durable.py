"""Durable, process-safe file operations shared by every writer of semid's files.

* :func:`atomic_write` publishes a file only once its bytes are on disk: the content goes
  to a temporary file in the same folder, which is flushed and fsynced, renamed over the
  target, and then the folder is fsynced so the rename itself survives a power cut. A
  failure leaves the previous file untouched and removes the temporary file.
* Temporary files (and the shards of the text cache) carry their writer in their name
  (:func:`writer_tag`: host and PID), so a later run can tell a dead writer's leftovers
  from the files a live writer is still producing (:func:`tag_state`): a ``semid demo``
  and the Dagster daemon may write into one home at the same time.
* :class:`FileLock` is an exclusive ``fcntl`` lock on a file, re-entrant within a process,
  for steps that must not interleave across processes (the MLflow registry's).

Nothing here imports numpy or any orchestrator: the lowest layer of ``core``.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import BinaryIO, ClassVar, Self

TEMP_SUFFIX = ".tmp"
# Files written before writers recorded their PID: removed once this old (no live write
# takes an hour; the age is the only sign of life such a file has).
UNTAGGED_GRACE_SECONDS = 3600.0

_TAG = r"(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)"
_TAG_RE = re.compile(rf"^{_TAG}$")
# ".<target>.<host>-<pid>.<random>.tmp", as atomic_write names them.
_TAGGED_TEMP_RE = re.compile(rf"^\.(?P<target>.+)\.{_TAG}\.[A-Za-z0-9_]+{re.escape(TEMP_SUFFIX)}$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:40]


def writer_tag() -> str:
    """``<host>-<pid>`` of this process: who is writing a temporary file (no dots, no slashes)."""
    return f"{_host()}-{os.getpid()}"


class Writer(Enum):
    ALIVE = "alive"
    DEAD = "dead"
    FOREIGN = "foreign"      # written on another host: its PID means nothing here
    UNTAGGED = "untagged"    # the name carries no writer (a file of an older semid)


def tag_state(tag: str | None) -> Writer:
    """Whether the writer named by a :func:`writer_tag` still runs.

    A PID reused by an unrelated process reads as alive: the file is kept, never wrongly removed.
    """
    if tag is None:
        return Writer.UNTAGGED
    match = _TAG_RE.match(tag)
    if match is None or match["host"] != _host():
        return Writer.FOREIGN
    return Writer.ALIVE if _pid_alive(int(match["pid"])) else Writer.DEAD


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def is_temporary(path: Path) -> bool:
    """A temporary file of :func:`atomic_write` (or of an earlier semid: hidden, ending in ``.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def temporary_writer(path: Path) -> Writer:
    """The state of the writer of temporary file ``path``."""
    match = _TAGGED_TEMP_RE.match(path.name)
    return tag_state(None if match is None else f"{match['host']}-{match['pid']}")


def is_abandoned(path: Path, state: Writer) -> bool:
    """A leftover safe to delete: its writer is dead, or (a file of an older semid, whose name
    carries no writer) it has not changed for :data:`UNTAGGED_GRACE_SECONDS`."""
    if state is Writer.DEAD:
        return True
    if state is not Writer.UNTAGGED:
        return False
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > UNTAGGED_GRACE_SECONDS


def remove_abandoned(paths, state_of: Callable[[Path], Writer], log: Callable[[str], None]) -> list[Path]:
    """Delete the abandoned ones among ``paths`` (one log line each); returns those removed."""
    removed = []
    for path in paths:
        state = state_of(path)
        if not is_abandoned(path, state):
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # another sweeper was first
            continue
        reason = "its writer is gone" if state is Writer.DEAD else "an old leftover that names no writer"
        log(f"removed {path} ({reason})")
        removed.append(path)
    return removed


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (a rename into it) durable; a no-op where folders
    cannot be opened (some platforms and file systems)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through ``write(file)`` atomically and durably (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{writer_tag()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            # The data must be on disk before the rename publishes it, or a power cut could
            # leave a renamed but empty file.
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


class FileLock:
    """An exclusive ``fcntl.flock`` on ``path``, re-entrant within the process.

    ``flock`` locks belong to an open file, so two handles in one process would block each
    other: every :class:`FileLock` of one path in a process shares one handle and one depth
    count (:meth:`of`), guarded by a thread lock. The lock dies with its process, so a killed
    holder never blocks the next one.
    """

    _by_path: ClassVar[dict[Path, FileLock]] = {}
    _registry_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @classmethod
    def of(cls, path: Path) -> FileLock:
        key = Path(os.path.abspath(path))
        with cls._registry_guard:
            if key not in cls._by_path:
                cls._by_path[key] = cls(key)
            return cls._by_path[key]

    def __enter__(self) -> Self:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
        finally:
            self._thread_lock.release()
