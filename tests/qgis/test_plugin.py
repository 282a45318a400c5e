"""The plugin object as QGIS Desktop (initGui) and qgis_process (iface=None) start it."""
from qgis.core import QgsApplication


def _remove_registered():
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("satplugin")
    if existing is not None:
        registry.removeProvider(existing)
    return registry


def test_desktop_initgui_registers_the_provider_and_unload_removes_it(qgis_iface, qgis_processing):
    import satplugin

    registry = _remove_registered()
    plugin = satplugin.classFactory(qgis_iface)
    plugin.initGui()
    provider = registry.providerById("satplugin")
    assert provider is not None
    assert sorted(a.id() for a in provider.algorithms()) == [
        "satplugin:downloadproducts", "satplugin:exportpatches", "satplugin:rasterizegroundtruth",
        "satplugin:searchproducts", "satplugin:superresolve",
    ]
    plugin.initGui()  # a second start must not re-add (and so delete) the provider
    assert registry.providerById("satplugin") is provider
    plugin.unload()
    assert registry.providerById("satplugin") is None


def test_headless_start_without_iface(qgis_processing):
    import satplugin

    registry = _remove_registered()
    plugin = satplugin.classFactory(None)
    plugin.initProcessing()
    assert registry.algorithmById("satplugin:rasterizegroundtruth") is not None
    plugin.unload()
