"""Sentinel-2 ML datasets plugin.

``qgis_satplugin.core`` is plain Python (numpy, rasterio, shapely, pyproj) with no
QGIS import; ``qgis_satplugin.plugin`` is the QGIS-side plugin class.
"""
