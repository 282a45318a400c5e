"""Default styles saved inside output GeoPackages, so any QGIS that opens them shows them."""
from qgis.core import (
    QgsFillSymbol,
    QgsGraduatedSymbolRenderer,
    QgsPalLayerSettings,
    QgsRendererRange,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)

# Scene or AOI cloud %, from clear to overcast.
CLOUD_CLASSES = [
    (0.0, 10.0, "#1a9641", "0–10 % cloud"),
    (10.0, 30.0, "#a6d96a", "10–30 %"),
    (30.0, 60.0, "#fdae61", "30–60 %"),
    (60.0, 100.0, "#d7191c", "60–100 %"),
]


def save_footprint_style(path: str, layer_name: str) -> str:
    """Graduate footprints by cloud, label them by acquisition group (date + orbit).

    Returns an error message, or '' when the style was stored as the layer's default.
    """
    layer = QgsVectorLayer(f"{path}|layername={layer_name}", layer_name, "ogr")
    if not layer.isValid():
        return f"could not open {path} to store its style"
    ranges = []
    for lower, upper, colour, label in CLOUD_CLASSES:
        symbol = QgsFillSymbol.createSimple(
            {"color": colour + "59", "outline_color": colour, "outline_width": "0.6"}  # 35 % opaque fill
        )
        ranges.append(QgsRendererRange(lower, upper, symbol, label))
    layer.setRenderer(QgsGraduatedSymbolRenderer("cloud", ranges))
    labels = QgsPalLayerSettings()
    labels.fieldName = "acq_group"
    labels.enabled = True
    layer.setLabeling(QgsVectorLayerSimpleLabeling(labels))
    layer.setLabelsEnabled(True)
    return layer.saveStyleToDatabase("satplugin footprints", "Cloud % graduated; labelled by date_orbit", True, "") or ""
