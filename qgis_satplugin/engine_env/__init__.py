"""The engine seen from QGIS: which Python runs it, installing it, and running a step in it.

The plugin's QGIS side imports only what QGIS ships; the steps' work needs rasterio,
shapely, ONNX Runtime and the rest. As QGIS's providers for GRASS, SAGA and Orfeo do with
their engines, the plugin finds (:mod:`.locate`) or installs (:mod:`.install`) an engine and
runs each step there as a child process (:mod:`.child`). Plain Python (no ``qgis``): what
these modules need from QGIS (the profile folder, a setting) the caller passes in.
"""
