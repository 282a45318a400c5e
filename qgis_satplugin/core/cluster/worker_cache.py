"""What a worker keeps open between tasks of one run: per thread, one entry, closed when the run ends.

A task rebuilds its context (the series, open rasters, an ONNX Runtime session) from plain
data; doing that for every chunk would dominate, so a worker keeps the last one. Per thread,
because rasterio datasets and the super-resolution readers are not shared between threads
(a ``dask worker`` runs several threads unless told otherwise); keyed by the run's own id,
so a later run on a long-lived cluster never reads files it opened for an earlier one (the
steps replace files by renaming); and :func:`release` closes everything at the end of a run
(``Client.run`` calls it on every worker), so no file stays open, or locked on Windows.
"""
from __future__ import annotations

import threading
from typing import Callable

_LOCK = threading.Lock()
_OPEN: dict = {}  # thread id -> (key, object with close())


def cached(key, make: Callable):
    """This thread's object for ``key`` (made with ``make()`` when it holds another key or none)."""
    me = threading.get_ident()
    with _LOCK:
        held = _OPEN.get(me)
    if held is not None and held[0] == key:
        return held[1]
    if held is not None:
        held[1].close()
    value = make()
    with _LOCK:
        _OPEN[me] = (key, value)
    return value


def release() -> int:
    """Close every thread's entry (between runs: no task is using them); returns how many."""
    with _LOCK:
        entries = list(_OPEN.values())
        _OPEN.clear()
    for _, value in entries:
        value.close()
    return len(entries)
