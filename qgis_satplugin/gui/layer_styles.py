"""How each output looks on the map: true colour, named class palettes, highlighted conflicts.

The footprints need nothing here: the search stores their style (graduated by cloud)
inside the GeoPackage, and QGIS applies it when the layer is opened.
"""
import json

from osgeo import gdal
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsRasterMinMaxOrigin,
    QgsRendererCategory,
)
from qgis.PyQt.QtGui import QColor

TRUE_COLOUR = ("B04", "B03", "B02")
# Distinct, colour-blind-friendly hues (Okabe-Ito, then Tol's muted) for class ids 1, 2, ...
CLASS_COLOURS = [
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#882255",
]
TRANSPARENT = QColor(0, 0, 0, 0)
# Codes of the rasterize step's conflict mask.
CONFLICT_CLASSES = [
    (0, TRANSPARENT, "no conflict"),
    (1, QColor("#ff8c00"), "1 · partly covered by polygons of different classes"),
    (2, QColor("#e31a1c"), "2 · inside one polygon and covered by another"),
]
SPLIT_COLOURS = {"train": "#1f78b4", "val": "#ff7f00", "test": "#33a02c"}


def band_descriptions(path):
    """Band descriptions as GDAL reads them ("B02", ...), '' where a band has none."""
    dataset = gdal.Open(path)
    if dataset is None:
        return []
    return [dataset.GetRasterBand(i).GetDescription() for i in range(1, dataset.RasterCount + 1)]


def style_true_colour(layer):
    """Red, green, blue = B04, B03, B02 (by band description), stretched on a 2–98 % cumulative cut.

    The cut ignores the few very bright (cloud) and dark (shadow, water) pixels that a
    min/max stretch would let wash out the fields. Returns False when the raster lacks
    one of the three bands (e.g. a single-band download), leaving QGIS's default style.
    """
    names = band_descriptions(layer.source())
    if not all(band in names for band in TRUE_COLOUR):
        return False
    red, green, blue = (names.index(band) + 1 for band in TRUE_COLOUR)
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue))
    layer.setContrastEnhancement(
        QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut
    )
    layer.triggerRepaint()
    return True


def class_table_of(path):
    """[{class_id, name, ...}] from the class raster's CLASS_TABLE metadata, or []."""
    dataset = gdal.Open(path)
    if dataset is None:
        return []
    text = dataset.GetRasterBand(1).GetMetadataItem("CLASS_TABLE") or dataset.GetMetadataItem("CLASS_TABLE")
    try:
        return json.loads(text) if text else []
    except ValueError:
        return []


def style_classes(layer, class_table):
    """One colour per class, named as in the class table; background (0) transparent."""
    classes = []
    for index, row in enumerate(r for r in class_table if int(r["class_id"]) != 0):
        colour = QColor(CLASS_COLOURS[index % len(CLASS_COLOURS)])
        classes.append(QgsPalettedRasterRenderer.Class(int(row["class_id"]), colour, str(row["name"])))
    classes.insert(0, QgsPalettedRasterRenderer.Class(0, TRANSPARENT, "background"))
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


def style_conflicts(layer):
    """Conflicts stand out over the imagery: 1 orange, 2 red, no conflict transparent."""
    classes = [QgsPalettedRasterRenderer.Class(value, colour, label) for value, colour, label in CONFLICT_CLASSES]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


def style_splits(layer):
    """Sample footprints of the export coloured by split (train, val, test)."""
    categories = []
    for split, colour in SPLIT_COLOURS.items():
        symbol = QgsFillSymbol.createSimple({"color": colour + "66", "outline_color": colour, "outline_width": "0.4"})
        categories.append(QgsRendererCategory(split, symbol, split))
    layer.setRenderer(QgsCategorizedSymbolRenderer("split", categories))
    layer.triggerRepaint()
