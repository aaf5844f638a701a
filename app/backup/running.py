"""Which processes use a Loft SQLite database, so `flask db restore` can refuse to swap it under them.

Two signs, because either alone misses a case:

- every web, worker and mail process holds a shared flock on `<database>.running` from start to exit
  (wsgi.py calls hold()), even while idle with no database connection open; the kernel drops the lock
  when a process dies, so a crash never leaves a stale one behind. A restore takes the same lock
  exclusively, so a process started during a restore waits until it is over.
- every open SQLite connection to a WAL database holds a read lock on one byte of its -shm file
  (SQLite's "dead man switch"), so a `sqlite3` shell, a script or a process started some other way
  shows as well.
"""
import fcntl
import logging
import os
from contextlib import contextmanager

from app.errors import Problem

DMS_BYTE = 128  # WALINDEX_LOCK_OFFSET (120) + 8: the byte every open WAL connection read-locks (os_unix.c)

log = logging.getLogger(__name__)

_held = {}  # lock path -> file descriptor, for the locks this process holds


def sqlite_path(url):
    """The file behind a sqlite:/// URL, or None for other databases (PostgreSQL, :memory:)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or ":memory:" in url:
        return None
    return url[len(prefix):].split("?", 1)[0]


def lock_path(database_path):
    return f"{database_path}.running"


def hold(database_path):
    """Mark this process as using the database until it exits (shared: any number of processes)."""
    path = lock_path(database_path)
    if path in _held:
        return
    try:
        fd = _open(path)
    except OSError as exc:  # never keep Loft from starting over it; the -shm sign still works
        log.warning("cannot take the process lock %s (%s): restores will only see open connections", path, exc)
        return
    fcntl.flock(fd, fcntl.LOCK_SH)  # blocks while a restore holds it exclusively, on purpose
    _held[path] = fd


def _open(path):
    # Read-only is enough for flock, and 0644 lets the service user open a file first made by root
    # (`sudo flask db upgrade` loads wsgi.py too).
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)


def release(database_path):
    """Let go of this process's own mark (the restore command runs in a process that took one)."""
    fd = _held.pop(lock_path(database_path), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


class InUse(Problem):
    """Some process still uses the database; the message says which sign showed it."""


def connections_open(sqlite_file):
    """True when another process has an SQLite connection open on this WAL database.

    Only valid while this process has no connection of its own open on it: POSIX locks of one
    process never conflict, and closing our descriptor would drop SQLite's locks in this process.
    """
    shm = f"{sqlite_file}-shm"
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False  # no -shm: nobody has it open in WAL mode
    except PermissionError:
        return False  # cannot tell without write access; the process lock still guards Loft's own processes
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, DMS_BYTE, os.SEEK_SET)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, DMS_BYTE, os.SEEK_SET)
        return False
    finally:
        os.close(fd)


@contextmanager
def exclusive(database_path, sqlite_files, force=False):
    """Hold the database for a restore; raise InUse when a Loft process or any connection uses it.

    `sqlite_files` are every SQLite file the restore replaces (the data and the queue). With force,
    goes on anyway and yields what it found, so the caller can say so."""
    fd = _open(lock_path(database_path))
    try:
        problems = []
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            problems.append("a Loft process (web, worker or mail) is running on this database")
        problems += [f"another process has {f} open" for f in sqlite_files if connections_open(f)]
        if problems and not force:
            raise InUse("; ".join(problems))
        yield problems
    finally:
        os.close(fd)
