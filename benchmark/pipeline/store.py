"""Atomic writes, per-output locks and stale temp cleanup: the one way the harness writes.

Every writer in the harness goes through these helpers, so a crash, a kill or a second process
never leaves half a file or a folder that looks finished:

- files are written to ``.<name>.<pid>-<thread>-<random>.tmp`` beside the target, fsynced and
  renamed over it (:func:`atomic_write_bytes`, :func:`atomic_write_text`,
  :func:`atomic_write_json`);
- folders are built under ``.<name>.<pid>-<random>.partial`` and renamed into place
  (:func:`atomic_folder`);
- a step that two processes may compute at once is guarded by an exclusive ``fcntl`` lock on
  a hidden ``.<name>.lock`` beside the target (:func:`output_lock`): the second waits, then
  finds the output done;
- temp names carry the writer's pid, so a process removes only its own live temp files, and
  :func:`remove_stale_temps` removes those whose process is gone (or older than a day when
  the pid cannot be read).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError

log = logging.getLogger(__name__)

_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-z-]+\.(?:tmp|partial)$")
STALE_AGE_SECONDS = 24 * 3600


class StoreWriteError(BenchmarkError):
    """A write into the workdir or results folder failed (names the path and the cause)."""


def _temp_name(target: Path, suffix: str) -> Path:
    token = f"{os.getpid()}-{threading.get_ident() % 10**8}-{secrets.token_hex(3)}"
    return target.with_name(f".{target.name}.{token}.{suffix}")


def describe_os_error(exc: OSError, path: Path | str) -> str:
    """``"<path>: No space left on device"``: the path and the real cause of an OSError."""
    cause = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        cause = "no space left on device"
    return f"{path}: {cause}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (unique temp file, fsync, rename).

    Raises:
        StoreWriteError: the folder cannot be created or written (one line, path and cause).
    """
    path = Path(path)
    tmp = _temp_name(path, "tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreWriteError(f"cannot write {describe_os_error(exc, path)}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON atomically (no NaN allowed)."""
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False, default=str)
    atomic_write_text(path, text + "\n")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temp path beside ``path`` for writers that take a file name (``torch.save``,
    soundfile, joblib); on success it is fsynced and renamed over ``path``.

    Raises:
        StoreWriteError: the write or the rename failed (one line, path and cause).
    """
    path = Path(path)
    tmp = _temp_name(path, "tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreWriteError(f"cannot write {describe_os_error(exc, path)}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Build a folder under a unique temp name; on success rename it over ``target``.

    Yields:
        The temp folder to fill. On an exception it is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target, "partial")
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def output_lock(target: Path, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``.<name>.lock`` beside ``target`` (waits while another
    process holds it).

    The lock file itself is never deleted (deleting it would let a third process lock a
    different inode); it is empty and small.
    """
    with _lock_file(target) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process computing %s", what or target)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _lock_file(target: Path) -> Iterator[Any]:
    """The open ``.<name>.lock`` file beside ``target`` (created, never deleted)."""
    target = Path(target)
    lock_path = target.with_name(f".{target.name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        yield handle


@contextlib.contextmanager
def try_lock(target: Path) -> Iterator[bool]:
    """Try the lock of :func:`output_lock` without waiting: yields True when this process
    holds it for the block, False when another process does (nothing is held then)."""
    with _lock_file(target) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(root: Path, max_depth: int = 4) -> int:
    """Delete temp files and folders under ``root`` whose writing process is gone.

    A temp name holds its writer's pid (:func:`_temp_name`); one whose pid is not alive, or
    one older than :data:`STALE_AGE_SECONDS`, is removed. Returns how many were removed.
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    now = time.time()
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            children = list(os.scandir(folder))
        except OSError:
            continue
        for child in children:
            match = _TEMP_RE.match(child.name)
            if match:
                pid = int(match["pid"])
                try:
                    age = now - child.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                if (pid != os.getpid() and not _pid_alive(pid)) or age > STALE_AGE_SECONDS:
                    log.info("removing stale temp %s", child.path)
                    if child.is_dir(follow_symlinks=False):
                        shutil.rmtree(child.path, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(child.path)
                    removed += 1
            elif child.is_dir(follow_symlinks=False) and depth < max_depth:
                stack.append((Path(child.path), depth + 1))
    return removed


def check_writable(folder: Path, what: str) -> None:
    """Fail at once, in one line, when ``folder`` cannot hold new files.

    Raises:
        StoreWriteError: the folder is a file, read-only, or its disk is full.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = _temp_name(folder / "write-probe", "tmp")
        with probe.open("wb") as handle:
            handle.write(b"x")
            handle.flush()
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as exc:
        raise StoreWriteError(
            f"the {what} folder is not writable: {describe_os_error(exc, folder)}; "
            f"free space or pick another folder"
        ) from exc
