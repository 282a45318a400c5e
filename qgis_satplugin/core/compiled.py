"""Compiled kernels (numba), with one cache whatever name the engine is imported under.

The same files are imported as ``satplugin_engine`` (the engine) and as the plugin's
``satplugin.qgis_satplugin.core`` (QGIS's own process, the tests). numba's cache lives next
to the source file, and a cached kernel names the module whose globals it uses (their
``__name__``): loading a kernel cached under the other name fails with "No module named
...". So a module of kernels takes its engine name (``satplugin_engine.<...>``) as its
``__name__``, under which it is also importable.
"""
from __future__ import annotations

import sys

ENGINE_PACKAGE = "satplugin_engine"
_CORE = __name__.rsplit(".", 1)[0]  # this package, under whatever name it was imported


def engine_name(module_name: str) -> str:
    """'satplugin.qgis_satplugin.core.ground_truth.burn_kernel' -> 'satplugin_engine.ground_truth.burn_kernel'."""
    return ENGINE_PACKAGE + module_name[len(_CORE):] if module_name.startswith(_CORE + ".") else module_name


def as_engine_module(namespace: dict) -> None:
    """Give the module whose globals are ``namespace`` its engine name (call it after the module's imports)."""
    name = engine_name(namespace["__name__"])
    sys.modules.setdefault(name, sys.modules[namespace["__name__"]])
    namespace["__name__"] = name


def kernel(function):
    """``numba.njit(cache=True, nogil=True)``: compiled once, cached for later processes, run without the GIL."""
    from numba import njit

    return njit(cache=True, nogil=True)(function)
