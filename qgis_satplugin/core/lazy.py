"""Package exports imported when first used, so that a step's options load without its dependencies.

The plugin's QGIS side imports each step's options (for help texts, choices and checks) in a
QGIS whose Python has none of the engine's packages (rasterio, shapely, ONNX Runtime...);
a step package's ``__init__`` therefore names what it exports but imports each name only
when asked for it (PEP 562 module ``__getattr__``).
"""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for ``package``; ``exports`` maps a name to ``"module"`` or
    ``"module:attribute"`` (relative to the package, e.g. ``"options"`` or ``"..sentinel2:SCL_CLOUD_CLASSES"``)."""

    def __getattr__(name: str):  # noqa: N807 (PEP 562)
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attribute = exports[name].partition(":")
        module = importlib.import_module(module_name if module_name.startswith(".") else f".{module_name}", package)
        return getattr(module, attribute or name)

    def __dir__():  # noqa: N807 (PEP 562)
        return sorted(exports)

    return __getattr__, __dir__
