"""The state directory's guard: one process per directory, a directory this uid can write, and a
state file that is still the one the bridge opened.

Why each:
- Two bridges on one directory would both acknowledge; the last writer wins and acknowledged
  points are lost. An exclusive `flock` on `bridge.lock` (released by the kernel when the
  process dies, so a kill -9 leaves no stale lock) makes the second one refuse to start.
- A state file deleted, replaced or truncated under a running bridge would be written into
  (or recreated empty) while exports are acknowledged. Before each commit the file's identity
  and size are compared with what was opened; on a mismatch the bridge stops acknowledging
  (503/UNAVAILABLE, which clients retry) and /readyz says why.
- A restart must never start from zero silently: `bridge.db.created` records that this directory
  held a state file; if the file is then missing or empty the bridge refuses to start until
  `--fresh-state` says the loss is accepted.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = "bridge.lock"
MARKER_SUFFIX = ".created"


class StateDirError(OSError):
    """The state directory cannot be used by this process; the message says why and what to do."""


class StateLost(OSError):
    """The state file changed under the running bridge; nothing more is acknowledged."""


def _who() -> str:
    return f"uid {os.getuid()} (gid {os.getgid()})"


def ensure_writable(directory: Path, purpose: str = "keep its state") -> None:
    """Create `directory` if needed; refuse with the directory and uid when it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(f"cannot create state directory {directory} as {_who()}: {exc.strerror}; "
                            f"create it writable for this user or set state.dir") from None
    if not directory.is_dir():
        raise StateDirError(f"state.dir {directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StateDirError(f"state directory {directory} is not writable by {_who()}, which it needs to "
                            f"{purpose}; chown/chmod it for this user or set state.dir")


class DirLock:
    """An exclusive, non-blocking `flock` on the directory's lock file, holding our pid."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateDirError(f"cannot open {self.path} as {_who()}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirError(f"state directory {self.path.parent} is in use by another otlp-bridge "
                                f"(pid {holder}); one process per state directory: stop it, or give "
                                f"this one its own state.dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class StateGuard:
    """Lock, writability, and the identity of one state file while it is open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.marker = path.with_name(path.name + MARKER_SUFFIX)
        self.lock = DirLock(path.parent)
        self.lost: str | None = None  # why nothing more is acknowledged, once the file changed
        self.failing: str | None = None  # the last state write's error, until one succeeds
        self._identity: tuple[int, int] | None = None
        self._size = 0

    @classmethod
    def acquire(cls, path: Path) -> StateGuard:
        """Before the state file is opened: a writable directory, the lock, and no silent restart from zero."""
        guard = cls(path)
        ensure_writable(path.parent)
        guard.lock.acquire()
        try:
            guard._refuse_silent_loss()
            if path.exists() and not os.access(path, os.W_OK):
                raise StateDirError(f"state file {path} is not writable by {_who()}; chown/chmod it")
        except BaseException:
            guard.lock.release()
            raise
        return guard

    def _refuse_silent_loss(self) -> None:
        if not self.marker.exists():
            return
        size = self.path.stat().st_size if self.path.exists() else None
        if size:
            return
        since = self.marker.read_text(errors="replace").strip() or "an earlier run"
        state = "missing" if size is None else "empty"
        raise StateDirError(f"state file {self.path} is {state}, but this directory has held one since {since}: "
                            f"refusing to start from zero. If the loss is accepted, run "
                            f"`otlp-bridge serve --fresh-state`; otherwise restore the file")

    def watch(self) -> None:
        """After the state file is open: remember which file it is, and that it exists."""
        stat = self.path.stat()
        self._identity = (stat.st_dev, stat.st_ino)
        self._size = stat.st_size
        if not self.marker.exists():
            self.marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))

    def check(self, *open_files: tuple[int, Path]) -> None:
        """Before a commit: raise StateLost (and stay lost) unless the file is still the one opened.

        `open_files` are other files of the state held open, as (fd, path), e.g. the journal
        segment being appended to: one unlinked under us is lost too."""
        if self.lost is None:
            self.lost = self._problem() or next(
                (f"state file {path} was deleted while running" for fd, path in open_files
                 if os.fstat(fd).st_nlink == 0), None)
            if self.lost is not None:
                log.error("%s; not acknowledging exports any more. Restart the bridge once the file "
                          "is restored (or with --fresh-state to accept the loss).", self.lost)
        if self.lost is not None:
            raise StateLost(self.lost)

    def wrote(self, error: BaseException | None) -> None:
        """After a state write: remember its failure (disk full, I/O error) until one succeeds."""
        self.failing = None if error is None else f"cannot write state in {self.path.parent}: {error}"

    @property
    def problem(self) -> str | None:
        """Why exports are not being acknowledged now (for /readyz), or None."""
        return self.lost or self.failing

    def _problem(self) -> str | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return f"state file {self.path} was deleted while running"
        if (stat.st_dev, stat.st_ino) != self._identity:
            return f"state file {self.path} was replaced while running"
        if stat.st_size < self._size:
            return f"state file {self.path} was truncated while running ({self._size} -> {stat.st_size} bytes)"
        self._size = stat.st_size
        return None

    def release(self) -> None:
        self.lock.release()


def start_fresh(directory: Path, move_aside: Callable[[Path], Path | None]) -> Path | None:
    """`--fresh-state`: move the state file aside and forget it existed, never under a running bridge."""
    ensure_writable(directory, purpose="move the old state file aside (--fresh-state renames it)")
    lock = DirLock(directory)
    lock.acquire()
    try:
        aside = move_aside(directory)
        for marker in directory.glob(f"*{MARKER_SUFFIX}"):
            marker.unlink(missing_ok=True)
        return aside
    finally:
        lock.release()
