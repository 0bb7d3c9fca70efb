"""Gives freed heap memory back to the operating system after a burst of heavy requests.

glibc keeps freed blocks in its arenas (up to eight per core, one per thread that allocated),
so without this the resident size stays near the burst's peak: fewer arenas
(`mallopt(M_ARENA_MAX)`, like MALLOC_ARENA_MAX) fragment less, and `malloc_trim(0)` returns
every arena's free pages. Measurements: docs/decisions/0015-bounded-resources.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

from anyio import to_thread

M_ARENA_MAX = -8  # glibc's malloc.h
MALLOC_ARENAS = 2


def _glibc(function: str) -> Callable[..., int] | None:
    try:
        found: Callable[..., int] = getattr(ctypes.CDLL(ctypes.util.find_library("c")), function)
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to call
        return None
    return found


_TRIM = _glibc("malloc_trim")
_MALLOPT = _glibc("mallopt")


def limit_malloc_arenas() -> None:
    """At most MALLOC_ARENAS glibc arenas for the threads started from now on (a
    MALLOC_ARENA_MAX set in the environment wins)."""
    if _MALLOPT is not None and "MALLOC_ARENA_MAX" not in os.environ:
        _MALLOPT(M_ARENA_MAX, MALLOC_ARENAS)


async def give_back_free_memory() -> None:
    """Return free heap pages to the OS, in a worker thread (a trim walks the whole heap)."""
    if _TRIM is not None:
        await to_thread.run_sync(_TRIM, 0)
