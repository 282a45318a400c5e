"""No new ``<file>.aux.xml`` beside the user's rasters when QGIS opens them as inputs.

A QgsRasterLayer computes a histogram for its default style, and GDAL saves it in a new
sidecar file (PAM) beside the raster when the layer closes: a file the user did not ask
for, next to their input (inside a download folder, too). QGIS opens input rasters when it
checks the parameters (SatPluginAlgorithm.checkParameterValues) and again where a step
asks for a layer (qgis_inputs.raster_layer): both go through :func:`no_new_sidecars`.
That covers the Processing dialog, the panel, models and ``processing.run``. qgis_process
3.22 opens the rasters of its command line itself, before any code of the plugin runs:
there a sidecar may still appear, as with any algorithm.
"""
import os
from contextlib import contextmanager


@contextmanager
def no_new_sidecars(values):
    """GDAL's sidecar files off in this thread while rasters named by path, none with a sidecar yet, are opened.

    ``values`` are parameter values (paths, lists of paths, layers). A raster that already
    has a sidecar keeps PAM on, as it may hold the raster's metadata; a layer already in the
    project is not opened again, so nothing changes for it.
    """
    from osgeo import gdal

    paths = []
    for value in values:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and os.path.isfile(item):
                paths.append(item)
    if not paths or any(os.path.exists(p + ".aux.xml") for p in paths):
        yield
        return
    previous = gdal.GetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", previous)
