"""Optional packages: which step or option needs each, and the sentence when one is missing.

A step checks what it needs before any work (:func:`require`), so a missing package is
one sentence naming the option that needs it and the command that installs it, not a
traceback half-way through a run.
"""
from __future__ import annotations

import importlib

from .errors import SatPluginError

# import name -> the pip requirement that provides it (the pins of requirements.txt).
PACKAGES = {
    "cv2": "opencv-python-headless==4.10.0.84",
    "numba": "numba==0.60.0",
    "onnxruntime": "onnxruntime-gpu==1.31.1",
    "sentinelhub": "sentinelhub==3.12.0",
    "zarr": "zarr==2.18.7",
    "numcodecs": "numcodecs==0.15.2",
}


def missing(*modules: str) -> list[str]:
    """The modules among ``modules`` that cannot be imported (a broken install counts as missing)."""
    absent = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            absent.append(name)
    return absent


def require(needed_by: str, *modules: str, alternative: str = "") -> None:
    """Raise one sentence if any of ``modules`` is missing.

    ``needed_by`` says what needs them ("OUTPUT_DISTANCE", "the zarr FORMAT");
    ``alternative`` is what the user can do instead, when there is something.
    """
    absent = missing(*modules)
    if not absent:
        return
    specs = " ".join(f'"{PACKAGES.get(name, name)}"' for name in absent)
    names = ", ".join(PACKAGES.get(name, name).split("==")[0] for name in absent)
    instead = f", or {alternative}" if alternative else ""
    raise SatPluginError(
        f"{needed_by} needs the Python package{'s' if len(absent) > 1 else ''} {names}, which "
        f"{'are' if len(absent) > 1 else 'is'} not installed: install {'them' if len(absent) > 1 else 'it'} "
        f"into QGIS's Python with 'python -m pip install {specs}'{instead}."
    )
