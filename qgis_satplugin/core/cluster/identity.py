"""What a worker must share with the client for the outputs to be the same bytes: one dict, compared on connect."""
from __future__ import annotations

import importlib
import sys

from .. import __version__
from ..compiled import ENGINE_PACKAGE
from ..errors import SatPluginError

# The packages whose version can change what a task writes or whether its results unpickle.
PACKAGES = ("numpy", "rasterio", "shapely", "pyproj", "numba", "pyogrio", "zarr", "numcodecs", "onnxruntime",
            "dask", "distributed", "cloudpickle", "msgpack")


def _version(module_name: str) -> str | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return str(getattr(module, "__version__", "?"))


def engine_identity() -> dict:
    """The engine's version, Python's, GDAL's and PROJ's, and :data:`PACKAGES` (None: not installed)."""
    found = {"satplugin-engine": __version__, "python": ".".join(map(str, sys.version_info[:3]))}
    found.update({name: _version(name) for name in PACKAGES})
    if found["rasterio"] is not None:
        import rasterio

        found["GDAL"] = rasterio.__gdal_version__
    if found["pyproj"] is not None:
        import pyproj

        found["PROJ"] = pyproj.proj_version_str
    return found


def differences(mine: dict, theirs: dict) -> list[str]:
    """``name A here, B there`` for every entry that differs, the engine first."""
    return [f"{name} {mine.get(name)} here, {theirs.get(name)} there"
            for name in sorted(set(mine) | set(theirs), key=lambda n: (n != "satplugin-engine", n))
            if mine.get(name) != theirs.get(name)]


def check_workers(client, timeout_s: float = 30.0) -> int:
    """Wait for at least one worker, then check every worker's :func:`engine_identity`; returns their number."""
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except Exception:  # distributed raises TimeoutError (asyncio's or its own, by version)
        raise SatPluginError(
            f"The Dask scheduler at {client.scheduler.address} has no workers after {timeout_s:.0f} s: start some "
            f"with 'dask worker {client.scheduler.address}' in an environment with satplugin-engine=={__version__}."
        ) from None
    mine = engine_identity()
    answers = client.run(engine_identity, on_error="return")
    for address, theirs in sorted(answers.items()):
        if isinstance(theirs, ImportError) and __package__.split(".")[0] != ENGINE_PACKAGE:
            # This engine is the plugin's copy in QGIS's own Python: its tasks are named after the
            # plugin's package, which a pip-installed engine on other machines does not have.
            raise SatPluginError(
                f"The Dask worker {address} cannot run this engine's tasks: they run in QGIS's own Python here "
                f"(the package {__package__.rsplit('.', 1)[0]}), and a cluster's workers need the engine's "
                "name: install the engine (satplugin:installengine) so that the steps run in it.")
        if isinstance(theirs, BaseException):
            raise SatPluginError(
                f"The Dask worker {address} cannot run the engine ({type(theirs).__name__}: {theirs}): install "
                f"satplugin-engine=={__version__} in the workers' environment, with the same packages as here.")
        diff = differences(mine, theirs)
        if diff:
            raise SatPluginError(
                f"The Dask worker {address} differs from this engine ({'; '.join(diff)}): the outputs could differ, "
                f"so install the same versions there (pip install satplugin-engine=={__version__}).")
    return len(answers)
