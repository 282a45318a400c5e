"""Polygons from a QGIS vector layer, for the engine: the file itself, or QGIS's own copy of the features.

A whole layer of a file GDAL reads, with no filter, goes to the engine by its name (it reads
the same features itself); a selection, a FILTER expression or a layer that is not a file
(memory, database, a model's temporary output) is written here by QGIS's writer into a
temporary GeoPackage, which the engine reads as any file.
"""
import os
import time

from qgis.core import (
    NULL,
    QgsExpression,
    QgsFeature,
    QgsFeatureRequest,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..qgis_satplugin.core.ground_truth.options import PolygonFile

NO_POLYGONS = "There are no polygons to rasterize: the layer, the selection or the filter is empty."
# The columns of the temporary GeoPackage that carries the features QGIS reads to the engine.
TEMPORARY_FIELDS = {"class": "satplugin_class", "id": "satplugin_parcel_id", "name": "satplugin_class_name",
                    "row": "satplugin_row", "geometry": "satplugin_geometry"}
WRITE_BATCH = 2000


def layer_field_name(fields, label: str, name: str) -> str:
    """The layer's own spelling of the field ``name``, found as QGIS finds fields: ignoring case.

    QGIS accepts 'lulc_id' for a field 'LULC_ID'; the engine, which reads the file itself,
    and QgsFields.field() need the name as the layer spells it.
    """
    if not name:
        return name
    index = fields.lookupField(name)
    if index < 0:
        raise QgsProcessingException(f"{label}: the layer has no field named '{name}'.")
    return fields.at(index).name()


class PolygonLayerInput:
    """For an algorithm with an INPUT polygon source and an optional FILTER expression."""

    def polygons_for_engine(self, source, parameters, context, feedback, class_field, id_field, name_field):
        """(the PolygonFile the engine reads, the features' extent, the temporary file to remove after, or None)."""
        plain_file = self._plain_file(parameters, context)
        if plain_file is not None:
            # The engine reads the file itself: nothing to send but its name (see core/ground_truth/polygon_file.py).
            if source.featureCount() == 0:
                raise QgsProcessingException(NO_POLYGONS)
            feedback.pushInfo(f"The engine reads the polygons from {plain_file[0]} itself.")
            polygons_file = PolygonFile(path=plain_file[0], layer=plain_file[1], class_field=class_field,
                                        id_field=id_field or None, name_field=name_field or None)
            return polygons_file, source.sourceExtent(), None
        polygons_file, extent = self._write_features(source, parameters, context, feedback, class_field, id_field,
                                                     name_field)
        return polygons_file, extent, polygons_file.path

    def _plain_file(self, parameters, context):
        """(path, layer) when INPUT is a whole layer of a file GDAL reads, with no filter; else None.

        Then the engine reads the same features itself; a selection, a filter, a subset or a
        layer that is not a file (memory, database, a model's temporary output) is read here.
        """
        if self.parameterAsString(parameters, "FILTER", context):
            return None
        definition = parameters.get("INPUT")
        if isinstance(definition, QgsProcessingFeatureSourceDefinition) and (
            definition.selectedFeaturesOnly or definition.featureLimit != -1
        ):
            return None
        layer = self.parameterAsVectorLayer(parameters, "INPUT", context)
        if layer is None or layer.providerType() != "ogr" or layer.subsetString():
            return None
        parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
        if parts.get("subset") or parts.get("layerId") not in (None, "") or not os.path.isfile(parts.get("path") or ""):
            return None
        return parts["path"], parts.get("layerName") or None

    def _request(self, source, parameters, context, wanted) -> QgsFeatureRequest:
        """The features to burn: FILTER checked here (a bad one must not burn everything), the fields needed."""
        request = QgsFeatureRequest()
        # parameterAsExpression returns '' for an expression that does not parse, which
        # would silently burn every feature: take the raw text and check it here.
        expression = self.parameterAsString(parameters, "FILTER", context)
        if expression:
            parsed = QgsExpression(expression)
            if parsed.hasParserError():
                raise QgsProcessingException(f"FILTER is not a valid expression: {parsed.parserErrorString()}")
            # A field that does not exist evaluates to NULL and silently filters everything out.
            unknown = sorted(
                c for c in parsed.referencedColumns() if not c.startswith("#!") and source.fields().lookupField(c) < 0
            )
            if unknown:
                raise QgsProcessingException(
                    f"FILTER uses the field '{unknown[0]}', which the layer does not have; "
                    f"its fields are: {', '.join(source.fields().names())}."
                )
            request.setFilterExpression(expression)
            request.setExpressionContext(self.createExpressionContext(parameters, context, source))
        request.setSubsetOfAttributes(wanted, source.fields())
        return request

    def _write_features(self, source, parameters, context, feedback, class_field, id_field, name_field):
        """The features to burn in a temporary GeoPackage, in their order, with their classes, ids and names.

        Returns (the PolygonFile the engine reads, their extent). The fields take fixed names
        (TEMPORARY_FIELDS), so that no field of the layer can clash with another or with the
        file's own columns; without ID_FIELD each feature's QGIS id is its parcel id.
        """
        wanted = list(dict.fromkeys(f for f in (class_field, id_field, name_field) if f))
        request = self._request(source, parameters, context, wanted)

        def renamed(name: str, role: str) -> QgsField:
            field = QgsField(source.fields().field(name))  # the layer's type, under a name of ours
            field.setName(TEMPORARY_FIELDS[role])
            return field

        fields = QgsFields()
        fields.append(renamed(class_field, "class"))
        fields.append(QgsField(TEMPORARY_FIELDS["id"], QVariant.LongLong))
        if name_field:
            fields.append(renamed(name_field, "name"))
        path = QgsProcessingUtils.generateTempFilename("satplugin-polygons.gpkg")
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName, options.layerName = "GPKG", "polygons"
        options.layerOptions = [f"FID={TEMPORARY_FIELDS['row']}", f"GEOMETRY_NAME={TEMPORARY_FIELDS['geometry']}",
                                "SPATIAL_INDEX=NO"]  # no index to build: the engine reads every feature once
        writer = QgsVectorFileWriter.create(path, fields, QgsWkbTypes.multiType(source.wkbType()), source.sourceCrs(),
                                            context.transformContext(), options)
        if writer.hasError() != QgsVectorFileWriter.NoError:
            message = writer.errorMessage()
            del writer
            remove_geopackage(path)
            raise QgsProcessingException(f"The polygons could not be written to a temporary file ({message}).")
        extent = QgsRectangle()
        extent.setMinimal()
        total, count = max(source.featureCount(), 1), 0
        next_report = time.monotonic()
        class_at = source.fields().indexOf(class_field)
        id_at = source.fields().indexOf(id_field) if id_field else -1
        name_at = source.fields().indexOf(name_field) if name_field else -1
        batch = []
        try:
            # Invalid geometries are repaired by the engine, so QGIS must not drop them first.
            for feature in source.getFeatures(request, QgsProcessingFeatureSource.FlagSkipGeometryValidityChecks):
                if feedback.isCanceled():
                    raise QgsProcessingException("Canceled by the user; no output was written.")
                geometry = feature.geometry()
                if not (geometry.isNull() or geometry.isEmpty()):
                    extent.combineExtentWith(geometry.boundingBox())
                    geometry.convertToMultiType()
                out = QgsFeature(fields)
                out.setGeometry(geometry)
                values = feature.attributes()
                parcel = values[id_at] if id_field else feature.id()
                if parcel == NULL or parcel is None:
                    raise QgsProcessingException(f"ID_FIELD: some features have no value in '{id_field}'.")
                out.setAttributes([values[class_at], parcel] + ([values[name_at]] if name_field else []))
                batch.append(out)
                count += 1
                if len(batch) == WRITE_BATCH:  # a batch per call: a third faster than a feature per call
                    _add(writer, batch)
                    batch = []
                    if time.monotonic() >= next_report:
                        feedback.setProgressText(f"Reading polygons ({count} of {total})")
                        next_report = time.monotonic() + 0.5
            _add(writer, batch)
            writer.flushBuffer()
        except BaseException:
            del writer
            remove_geopackage(path)
            raise
        del writer  # closes the file
        if count == 0:
            remove_geopackage(path)
            raise QgsProcessingException(NO_POLYGONS)
        feedback.setProgressText(f"Read {count} polygons")
        polygons_file = PolygonFile(path=path, layer="polygons", class_field=TEMPORARY_FIELDS["class"],
                                    id_field=TEMPORARY_FIELDS["id"], name_field=TEMPORARY_FIELDS["name"] if name_field else None)
        return polygons_file, extent


def _add(writer, features) -> None:
    if features and not writer.addFeatures(features):
        raise QgsProcessingException(f"The polygons could not be written to a temporary file ({writer.errorMessage()}).")


def remove_geopackage(path: str) -> None:
    """A temporary GeoPackage, the journal files SQLite may leave beside it, and its folder when empty.

    Never raises: it runs while another error or a cancel may be on its way out (Processing
    empties its temporary folder when QGIS exits anyway).
    """
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            os.remove(name)
        except FileNotFoundError:
            pass
        except OSError:  # still open (Windows): left to Processing's clean-up
            return
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass
