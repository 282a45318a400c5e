"""QGIS plugin entry point.

The repository root is the plugin folder. QGIS Desktop and qgis_process both call
``classFactory``; qgis_process passes ``iface=None`` and then calls ``initProcessing``.
Nothing here imports QGIS at module import time, so the pure-Python core stays
importable without QGIS.
"""


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    from .qgis_satplugin.plugin import SatPlugin

    return SatPlugin(iface)
