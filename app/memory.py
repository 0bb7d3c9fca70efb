"""Gives freed heap memory back to the operating system after a burst of heavy requests.

glibc keeps freed blocks in its arenas (one per thread that allocated), so without this the
resident size stays near the burst's peak; `malloc_trim(0)` returns every arena's free pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

from anyio import to_thread


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to call
        return None
    return trim


_TRIM = _malloc_trim()


def trim_available() -> bool:
    """Whether this C library can give memory back (glibc)."""
    return _TRIM is not None


async def give_back_free_memory() -> None:
    """Return free heap pages to the OS, in a worker thread (a trim walks the whole heap)."""
    if _TRIM is not None:
        await to_thread.run_sync(_TRIM, 0)
