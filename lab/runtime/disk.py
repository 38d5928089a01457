"""A full disk in one line: which path, how much is free, and that the run can resume.

Orbax writes checkpoints from background threads and reports a failed write wrapped in its
own exceptions, hundreds of lines from its cause (tensorstore's is a `ValueError` that says
`RESOURCE_EXHAUSTED ... No space left on device [os_error_code='28']`, no OSError at all);
the JSONL logs fail on a flush. Whatever the wrapping, an `ENOSPC` anywhere in an
exception's chain, or tensorstore's text of one, becomes one `DiskFullError` (an
`OSError` with errno ENOSPC, so callers that handle OSError keep working) naming the run
directory and its free space. Nothing is lost: the last complete checkpoint stays, orbax
ignores a half-written one, and the logs are cut back to the checkpoint on resume.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import re
import shutil
import sys
import threading
import traceback
from collections.abc import Iterator


class DiskFullError(OSError):
    """No space left where a run writes; the message names the path and the free space."""


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding `path` (its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def format_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


_TENSORSTORE_NO_SPACE = re.compile(rf"os_error_code='?{errno.ENOSPC}'?|No space left on device")
_TENSORSTORE_FILE = re.compile(r'Failed writing: "([^"]+)"')


def no_space_cause(error: BaseException) -> OSError | None:
    """The ENOSPC in `error`'s chain (causes, contexts, exception groups), as an OSError."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return current
        if not isinstance(current, OSError) and _TENSORSTORE_NO_SPACE.search(str(current)):
            written = _TENSORSTORE_FILE.search(str(current))
            return OSError(errno.ENOSPC, "No space left on device", written and written[1])
        todo += [current.__cause__, current.__context__]
        todo += list(getattr(current, "exceptions", ()))
        todo += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
    return None


def disk_full(path: str | os.PathLike, cause: OSError | None = None) -> DiskFullError:
    where = cause.filename if cause is not None and cause.filename else None
    elsewhere = f" (writing {where})" if where and not str(where).startswith(str(path)) else ""
    message = (
        f"no space left on the device of {path}{elsewhere}: {format_bytes(free_bytes(path))} "
        "free; free some space and run the same command again: it resumes from the last "
        "complete checkpoint"
    )
    return DiskFullError(errno.ENOSPC, message, str(path))


_NO_SPACE_SEEN = threading.Event()  # a write of this process failed for want of space


class QuietNoSpace(logging.Filter):
    """Drops the log records of a full disk that orbax's background threads (absl) and
    asyncio's collected tasks print, once per array shard, before the run itself stops with
    one DiskFullError: the same ENOSPC, hundreds of lines of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if (error is not None and no_space_cause(error) is not None) or (
            _TENSORSTORE_NO_SPACE.search(record.getMessage())
        ):
            _NO_SPACE_SEEN.set()
            return False
        return True


def _closed_loop_hook(previous):
    """After a failed save, tensorstore's writes still in flight complete into orbax's event
    loop, closed by then: Python reports each as an unraisable 'Event loop is closed', maybe
    before the failure's cause is known. Those are held back, and shown at exit unless a
    write failed for want of space (the run then said so in one line)."""
    held: list[tuple[type, BaseException, object]] = []

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and "Event loop is closed" in str(error):
            if not _NO_SPACE_SEEN.is_set():
                held.append((unraisable.exc_type, error, unraisable.exc_traceback))
            return
        previous(unraisable)

    def show_held() -> None:
        if not _NO_SPACE_SEEN.is_set():
            for exc_type, error, tb in held:
                traceback.print_exception(exc_type, error, tb)

    atexit.register(show_held)
    hook.quiet_closed_loop = True  # type: ignore[attr-defined]
    return hook


def quiet_no_space_noise(*loggers: str) -> None:
    """Install QuietNoSpace on these loggers and the closed-loop hook (once each)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietNoSpace) for f in logger.filters):
            logger.addFilter(QuietNoSpace())
    if not getattr(sys.unraisablehook, "quiet_closed_loop", False):
        sys.unraisablehook = _closed_loop_hook(sys.unraisablehook)


@contextlib.contextmanager
def disk_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full disk under this block, however wrapped, into one DiskFullError."""
    try:
        yield
    except DiskFullError:
        raise
    except BaseException as error:  # orbax wraps the OSError in its own exceptions
        cause = no_space_cause(error)
        if cause is None:
            raise
        _NO_SPACE_SEEN.set()
        raise disk_full(path, cause) from None
