"""The plugin's core: plain Python, numpy, rasterio, shapely and pyproj.

Nothing in this package imports ``qgis``; algorithms in ``processing_algs`` turn QGIS
parameters into plain values and call it, and so can a notebook or a test.

Installed on its own (``pip install .`` from the repository, see ``pyproject.toml``) the
same modules import as ``satplugin_engine``.
"""

# The plugin's version (metadata.txt); the engine package carries the same.
__version__ = "0.1.0"
