"""Putting a step's outputs on the map, each step's layers in its own group at the top."""
from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

OUTPUT_PROPERTY = "satplugin/output"  # marks the layers the dock added (not the user's own data)


def _group(name):
    root = QgsProject.instance().layerTreeRoot()
    return root.findGroup(name) or root.insertGroup(0, name)


def add_layer(layer, group_name, visible=True):
    if not layer.isValid():
        raise RuntimeError(f"QGIS could not open {layer.source()}")
    layer.setCustomProperty(OUTPUT_PROPERTY, group_name)
    QgsProject.instance().addMapLayer(layer, False)
    node = _group(group_name).addLayer(layer)
    node.setItemVisibilityChecked(visible)
    return layer


def add_vector(path, layer_name, display_name, group_name):
    return add_layer(QgsVectorLayer(f"{path}|layername={layer_name}", display_name, "ogr"), group_name)


def add_raster(path, display_name, group_name, visible=True):
    return add_layer(QgsRasterLayer(path, display_name, "gdal"), group_name, visible)
