"""The plugin's core: plain Python, numpy, rasterio, shapely and pyproj.

Nothing in this package imports ``qgis``; algorithms in ``processing_algs`` turn QGIS
parameters into plain values and call it, and so can a notebook or a test.
"""
