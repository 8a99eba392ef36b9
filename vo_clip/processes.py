"""Processes that do not outlive their parent, and telling whether one still runs.

A worker of a process pool blocks on its task queue; when the parent is killed
(SIGKILL, the OOM killer) nothing tells it to stop, so it renders on, holding memory
and files. :func:`die_with_parent` is a pool initializer that ties the worker to the
process that is its parent when it starts: on Linux the kernel kills it
(``PR_SET_PDEATHSIG``), elsewhere a watcher thread notices the parent is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent", "process_alive"]

_PR_SET_PDEATHSIG = 1
_WATCH_EVERY_S = 0.5


def die_with_parent() -> None:
    """Make the calling (child) process end when its parent does."""
    parent = os.getppid()
    if not (sys.platform.startswith("linux") and _ask_kernel()):
        threading.Thread(target=_watch, args=(parent,), name="parent-watch",
                         daemon=True).start()
    if os.getppid() != parent:  # the parent died before we were tied to it
        os._exit(1)


def _ask_kernel() -> bool:
    """prctl(PR_SET_PDEATHSIG, SIGKILL); False if it cannot be done."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCH_EVERY_S)
    os._exit(1)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited, unreaped child)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc: os.kill said it exists
