"""The plugin object as QGIS Desktop (initGui) and qgis_process (iface=None) start it."""
from qgis.core import QgsApplication, QgsProcessingAlgorithm


def _remove_registered():
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("satplugin")
    if existing is not None:
        registry.removeProvider(existing)
    return registry


def test_desktop_initgui_registers_the_provider_and_unload_removes_it(qgis_iface, qgis_processing, monkeypatch):
    import satplugin

    calls = []
    # The fake iface does nothing on these (or answers with a MagicMock): record them.
    for name in ("addDockWidget", "removeDockWidget", "addToolBarIcon", "removeToolBarIcon",
                 "addPluginToMenu", "removePluginMenu"):
        monkeypatch.setattr(qgis_iface, name, lambda *args, _name=name: calls.append((_name, args)), raising=False)
    registry = _remove_registered()
    plugin = satplugin.classFactory(qgis_iface)
    plugin.initGui()
    provider = registry.providerById("satplugin")
    assert provider is not None
    assert sorted(a.id() for a in provider.algorithms()) == [
        "satplugin:builddataset", "satplugin:downloadproducts", "satplugin:exportpatches", "satplugin:installengine",
        "satplugin:rasterizegroundtruth", "satplugin:removeengine", "satplugin:searchproducts", "satplugin:superresolve",
    ]
    # The dock, docked on the right, hidden until its action (toolbar and menu) shows it.
    from qgis.PyQt.QtCore import Qt

    from satplugin.qgis_satplugin.gui.dock import SatPluginDock

    dock, action = plugin.dock, plugin.action
    assert isinstance(dock, SatPluginDock) and dock.windowTitle() == "Sentinel-2 ML datasets"
    assert calls == [("addDockWidget", (Qt.RightDockWidgetArea, dock)), ("addToolBarIcon", (action,)),
                     ("addPluginToMenu", ("&Sentinel-2 ML datasets", action))]
    assert dock.isHidden() and action.isCheckable() and not action.isChecked()
    action.trigger()
    assert not dock.isHidden() and action.isChecked()
    plugin.initGui()  # a second start must not re-add (and so delete) the provider, nor add a second dock
    assert registry.providerById("satplugin") is provider and plugin.dock is dock and len(calls) == 3
    plugin.unload()
    assert registry.providerById("satplugin") is None
    assert [name for name, _ in calls[3:]] == ["removePluginMenu", "removeToolBarIcon", "removeDockWidget"]
    assert calls[-1] == ("removeDockWidget", (dock,)) and plugin.dock is None


def test_headless_start_without_iface(qgis_processing):
    import satplugin

    registry = _remove_registered()
    plugin = satplugin.classFactory(None)
    plugin.initProcessing()
    assert registry.algorithmById("satplugin:rasterizegroundtruth") is not None
    plugin.initGui()  # without a window there is no dock, and nothing touches iface
    assert plugin.dock is None and plugin.action is None
    plugin.unload()
    assert registry.providerById("satplugin") is None


def test_without_an_engine_desktop_offers_install_engine(qgis_iface, qgis_processing, monkeypatch, tmp_path):
    """The message bar says why and offers Install engine…, which opens the installer's dialog."""
    import processing
    from qgis.PyQt.QtWidgets import QPushButton

    import satplugin

    for name in ("addDockWidget", "removeDockWidget", "addToolBarIcon", "removeToolBarIcon",
                 "addPluginToMenu", "removePluginMenu"):
        monkeypatch.setattr(qgis_iface, name, lambda *args: None, raising=False)
    missing = tmp_path / "gone" / "bin" / "python"
    monkeypatch.setenv("SATPLUGIN_ENGINE_PYTHON", str(missing))
    _remove_registered()
    plugin = satplugin.classFactory(qgis_iface)
    plugin.initGui()
    try:
        item = qgis_iface.messageBar().currentItem()
        assert item is not None and f"{missing}, does not exist" in item.text()
        buttons = [b for b in item.findChildren(QPushButton) if b.text() == "Install engine…"]
        assert len(buttons) == 1
        opened = []
        monkeypatch.setattr(processing, "execAlgorithmDialog", lambda alg, params: opened.append(alg))
        buttons[0].click()
        assert opened == ["satplugin:installengine"]
        assert qgis_iface.messageBar().currentItem() is item  # the dialog was closed without an engine
        # A step run from the panel stops before it makes anything, with that same bar, once.
        work = tmp_path / "work"
        plugin.dock.folder.setFilePath(str(work))
        for page in (plugin.dock.search, plugin.dock.ground_truth, plugin.dock.search):
            plugin.dock.run_step(page)
        assert not work.exists() and not plugin.dock.runner.is_running()
        offers = [i for i in qgis_iface.messageBar().items()
                  if [b.text() for b in i.findChildren(QPushButton)] == ["Install engine…"]]
        assert len(offers) == 1 and f"{missing}, does not exist" in offers[0].text()
        item = offers[0]
        # A step cannot start, and says the same sentence where the dialog shows it.
        algorithm = QgsApplication.processingRegistry().algorithmById("satplugin:rasterizegroundtruth")
        can, why = algorithm.canExecute()
        assert not can and "does not exist" in why
        # The installer's dialog tells what, how big and where, before anything is done.
        installer = QgsApplication.processingRegistry().algorithmById("satplugin:installengine")
        assert installer.canExecute()[0]
        # Installed once, not as a batch: no "Run as Batch Process…" (the other steps keep it).
        for alg_id, batch in (("installengine", False), ("removeengine", False), ("exportpatches", True)):
            flags = QgsApplication.processingRegistry().algorithmById(f"satplugin:{alg_id}").flags()
            assert bool(flags & QgsProcessingAlgorithm.FlagSupportsBatch) is batch, alg_id
        text = installer.shortHelpString()
        assert f"{QgsApplication.qgisSettingsDirPath()}" in text and "satplugin-engine" in text and "MB" in text
        monkeypatch.setattr(qgis_iface, "browserModel", lambda: None, raising=False)  # the fake iface has none
        dialog = processing.createAlgorithmDialog("satplugin:installengine", {})
        assert dialog is not None and "WHEELHOUSE" in [p.name() for p in dialog.algorithm().parameterDefinitions()]
        dialog.deleteLater()
    finally:
        plugin.unload()
        qgis_iface.messageBar().clearWidgets()

    # The dialog closed with an engine in place (here: the developer environment's): the message goes.
    plugin.initGui()
    item = qgis_iface.messageBar().currentItem()
    assert item is not None
    monkeypatch.setattr(processing, "execAlgorithmDialog", lambda alg, params: monkeypatch.delenv("SATPLUGIN_ENGINE_PYTHON"))
    plugin.open_installer()
    assert qgis_iface.messageBar().currentItem() is None and plugin.engine_message is None
    plugin.unload()

    # With an engine, no message at all.
    _remove_registered()
    plugin = satplugin.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert qgis_iface.messageBar().currentItem() is None
    finally:
        plugin.unload()
