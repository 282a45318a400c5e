"""The ground truth's own GeoPackage reader gives what GDAL gives, or leaves the file to GDAL.

Every file here is written by GDAL (its Python bindings, as QGIS writes layers), then edited
with sqlite3 where a case needs what GDAL would not write. Each case compares the plain
reader's values with pyogrio's, or checks that the plain reader declines and GDAL's values
come out.
"""
from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import shapely

from satplugin.qgis_satplugin.core.ground_truth import polygon_file
from satplugin.qgis_satplugin.core.ground_truth.geopackage import read_plain_geopackage
from satplugin.qgis_satplugin.core.ground_truth.options import PolygonFile

REPO_ROOT = Path(__file__).resolve().parents[2]
SQUARE = shapely.Polygon([(500000, 5000000), (500100, 5000000), (500100, 5000100), (500000, 5000100)],
                         holes=[[(500040, 5000040), (500060, 5000040), (500060, 5000060), (500040, 5000060)]])
TWO = shapely.MultiPolygon([shapely.box(500200, 5000000, 500250, 5000050), shapely.box(500300, 5000000, 500330, 5000020)])


def write_layer(path, features, fields, epsg=32633, layer="parcels", geometry_type=None, wkt=None):
    """A GeoPackage layer written by GDAL: ``features`` are (geometry or None, {field: value}), in FID order."""
    from osgeo import ogr, osr

    exists = Path(path).exists()
    ds = ogr.Open(str(path), 1) if exists else ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    if wkt:
        srs.ImportFromWkt(wkt)
    else:
        srs.ImportFromEPSG(epsg)
    lyr = ds.CreateLayer(layer, srs, geometry_type if geometry_type is not None else ogr.wkbUnknown)
    for name, (kind, subtype) in fields.items():
        definition = ogr.FieldDefn(name, kind)
        definition.SetSubType(subtype)
        lyr.CreateField(definition)
    for geometry, values in features:
        feature = ogr.Feature(lyr.GetLayerDefn())
        if geometry is not None:
            feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(geometry)))
        for name, value in values.items():
            if value is None:
                feature.SetFieldNull(name)
            else:
                feature.SetField(name, value)
        lyr.CreateFeature(feature)
    ds = None
    return Path(path)


def _fields(*names_kinds):
    from osgeo import ogr

    kinds = {"int64": (ogr.OFTInteger64, ogr.OFSTNone), "int32": (ogr.OFTInteger, ogr.OFSTNone),
             "int16": (ogr.OFTInteger, ogr.OFSTInt16), "real": (ogr.OFTReal, ogr.OFSTNone),
             "float32": (ogr.OFTReal, ogr.OFSTFloat32), "text": (ogr.OFTString, ogr.OFSTNone)}
    return {name: kinds[kind] for name, kind in names_kinds}


def plain_layer(path, layer="parcels", **kwargs):
    """Every plain case at once: holes, multipolygons, a NULL geometry, NULL values, non-ASCII text,
    64- and 32-bit integers (one past 32 bits), doubles; a deleted feature leaves an FID gap."""
    features = [
        (SQUARE, {"crop": 7, "code": 70, "share": 0.25, "name": "Weizen"}),
        (TWO, {"crop": 2**40, "code": -3, "share": None, "name": "čebula"}),
        (None, {"crop": 3, "code": None, "share": 1.5, "name": None}),
        (shapely.box(500400, 5000000, 500410, 5000010), {"crop": None, "code": 2**31 - 1, "share": -0.0, "name": "x"}),
        (shapely.box(500500, 5000000, 500510, 5000010), {"crop": 5, "code": 5, "share": 2.0, "name": "gone"}),
    ]
    path = write_layer(path, features, _fields(("crop", "int64"), ("code", "int32"), ("share", "real"),
                                                ("name", "text")), layer=layer, **kwargs)
    _edit(path, f'DELETE FROM "{layer}" WHERE "name" = \'gone\'')
    return path


def gdal_values(spec, wanted):
    found = polygon_file._read_with_gdal(spec, wanted)
    return {**found, "wkb": list(found["wkb"])}


def _edit(path, sql):
    """Run SQL on the file through GDAL, whose SQLite functions the GeoPackage's R-tree triggers call."""
    from osgeo import ogr

    ds = ogr.Open(str(path), 1)
    ds.ExecuteSQL(sql)
    ds = None
    return path


def test_a_plain_layer_gives_gdals_fids_wkb_bytes_values_and_crs(tmp_path):
    path = plain_layer(tmp_path / "plain.gpkg")
    wanted = ["crop", "code", "share", "name"]
    found = read_plain_geopackage(str(path), None, wanted)
    expected = gdal_values(PolygonFile(str(path), "crop"), wanted)
    assert found is not None
    assert found["fids"] == expected["fids"] == [1, 2, 3, 4]
    assert found["wkb"] == expected["wkb"]
    assert found["wkb"][2] is None and shapely.from_wkb(found["wkb"][0]).equals(shapely.MultiPolygon([SQUARE]))
    assert found["columns"] == expected["columns"]
    assert found["columns"]["crop"] == [7, 2**40, 3, None] and found["columns"]["name"][1] == "čebula"
    assert found["crs"] == expected["crs"] == "EPSG:32633"
    # The layer named, and a geographic CRS, give the same.
    other = plain_layer(tmp_path / "lonlat.gpkg", epsg=4326, layer="Fields 2024")
    assert read_plain_geopackage(str(other), "Fields 2024", ["crop"])["crs"] == "EPSG:4326"
    assert read_plain_geopackage(str(other), "Fields 2024", ["crop"]) == gdal_values(
        PolygonFile(str(other), "crop", layer="Fields 2024"), ["crop"])


def test_read_polygons_of_a_plain_geopackage_is_gdals_job_and_imports_no_pyogrio(tmp_path):
    path = plain_layer(tmp_path / "plain.gpkg")
    spec = PolygonFile(str(path), "crop", id_field="code", name_field="name")
    code = (
        "import sys, json; from tests.plugin_link import link_plugin_package; link_plugin_package()\n"
        "from satplugin.qgis_satplugin.core.ground_truth.polygon_file import read_polygons\n"
        "from satplugin.qgis_satplugin.core.ground_truth.options import PolygonFile\n"
        f"found = read_polygons(PolygonFile({str(path)!r}, 'crop', name_field='name'))\n"
        "print(json.dumps([found['parcel_ids'], 'pyogrio' in sys.modules, 'pandas' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[[1, 2, 3, 4], false, false]"
    # ID_FIELD with a NULL value: the same sentence as GDAL's path gives.
    with pytest.raises(Exception, match="ID_FIELD: some features have no value in 'code'"):
        polygon_file.read_polygons(spec)


def _declines_and_gdal_reads(path, monkeypatch, layer=None, field="crop"):
    """The plain reader declines, and read_polygons gives exactly what it gives with GDAL alone."""
    assert read_plain_geopackage(str(path), layer, [field]) is None
    spec = PolygonFile(str(path), field, layer=layer)
    found = polygon_file.read_polygons(spec)
    monkeypatch.setattr(polygon_file, "read_plain_geopackage", lambda *a: None)
    assert found == polygon_file.read_polygons(spec)
    return found




def _big_endian(geometry):
    return b"GP\x00\x00" + (32633).to_bytes(4, "little") + shapely.to_wkb(geometry, byte_order=0)


@pytest.mark.parametrize("case", [
    "3d", "int16 field", "float32 field", "text in an integer column", "int32 column past 32 bits",
    "big-endian wkb", "empty geometry", "curve", "custom crs", "no crs", "not a geopackage", "wal journal",
])
def test_anything_unusual_is_left_to_gdal_which_reads_it_as_before(tmp_path, monkeypatch, case):
    from osgeo import ogr

    path = tmp_path / "case.gpkg"
    field = "crop"
    if case == "3d":
        write_layer(path, [(shapely.Polygon([(0, 0, 1), (10, 0, 2), (10, 10, 3), (0, 0, 1)]), {"crop": 1})],
                    _fields(("crop", "int64")), geometry_type=ogr.wkbPolygon25D)
    elif case in ("int16 field", "float32 field"):
        kind = "int16" if case == "int16 field" else "float32"
        write_layer(path, [(SQUARE, {"crop": 1.1 if kind == "float32" else 300})], _fields(("crop", kind)))
    elif case == "text in an integer column":
        _edit(plain_layer(path), 'UPDATE parcels SET crop = \'12abc\' WHERE fid = 1')
    elif case == "int32 column past 32 bits":
        field = "code"
        _edit(plain_layer(path), f"UPDATE parcels SET code = {2**31} WHERE fid = 1")
    elif case == "big-endian wkb":
        _edit(plain_layer(path), f"UPDATE parcels SET geom = X'{_big_endian(SQUARE).hex()}' WHERE fid = 1")
    elif case == "empty geometry":
        write_layer(path, [(shapely.Polygon(), {"crop": 1}), (SQUARE, {"crop": 2})], _fields(("crop", "int64")))
    elif case == "curve":
        write_layer(path, [(None, {"crop": 1})], _fields(("crop", "int64")), geometry_type=ogr.wkbCurvePolygon)
        curve = ogr.CreateGeometryFromWkt("CURVEPOLYGON(CIRCULARSTRING(0 0,10 10,20 0,10 -10,0 0))")
        header = b"GP\x00\x00" + (32633).to_bytes(4, "little")
        _edit(path, f"UPDATE parcels SET geom = X'{(header + bytes(curve.ExportToIsoWkb())).hex()}' WHERE fid = 1")
    elif case == "custom crs":
        write_layer(path, [(SQUARE, {"crop": 1})], _fields(("crop", "int64")),
                    wkt='LOCAL_CS["site grid",UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]')
    elif case == "no crs":
        write_layer(path, [(SQUARE, {"crop": 1})], _fields(("crop", "int64")))
        _edit(path, "UPDATE gpkg_geometry_columns SET srs_id = -1")
    elif case == "not a geopackage":
        path = tmp_path / "case.shp"
        from osgeo import osr

        ds = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(str(path))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32633)
        lyr = ds.CreateLayer("case", srs, ogr.wkbPolygon)
        lyr.CreateField(ogr.FieldDefn("crop", ogr.OFTInteger))
        feature = ogr.Feature(lyr.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(SQUARE)))
        feature.SetField("crop", 4)
        lyr.CreateFeature(feature)
        ds = None
    elif case == "wal journal":
        # A GeoPackage QGIS is editing: WAL journal and a reader lock held open. Read-only SQLite may
        # not create the -shm file it needs; either way nothing of the user's may change.
        plain_layer(path)
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
        before = _files(tmp_path)
        assert read_plain_geopackage(str(path), None, ["crop"]) is None
        assert _files(tmp_path) == before
    found = _declines_and_gdal_reads(path, monkeypatch, field=field)
    assert len(found["polygons"]) >= 1


@pytest.mark.filterwarnings("ignore:More than one layer found")  # pyogrio's, on GDAL's choice of the first layer
def test_several_layers_and_none_named_or_a_missing_field_are_left_to_gdal(tmp_path, monkeypatch):
    path = plain_layer(tmp_path / "two.gpkg")
    write_layer(path, [(SQUARE, {"crop": 9})], _fields(("crop", "int64")), layer="another")
    _declines_and_gdal_reads(path, monkeypatch)  # GDAL picks its first layer
    assert read_plain_geopackage(str(path), "another", ["crop"])["columns"] == {"crop": [9]}
    assert read_plain_geopackage(str(path), "parcels", ["no_such_field"]) is None
    with pytest.raises(Exception, match="no field named 'no_such_field'"):
        polygon_file.read_polygons(PolygonFile(str(path), "no_such_field", layer="parcels"))


def test_the_file_is_read_only_nothing_beside_it_changes(tmp_path):
    path = plain_layer(tmp_path / "plain.gpkg")
    before = _files(tmp_path)
    assert read_plain_geopackage(str(path), None, ["crop"]) is not None
    assert _files(tmp_path) == before
    # A hot rollback journal beside it (a crashed writer): SQLite would have to write to recover it.
    (tmp_path / "plain.gpkg-journal").write_bytes(b"")
    assert read_plain_geopackage(str(path), None, ["crop"]) is None
    garbage = tmp_path / "garbage.gpkg"
    garbage.write_bytes(b"not sqlite at all" * 100)
    assert read_plain_geopackage(str(garbage), None, ["crop"]) is None
    assert garbage.read_bytes() == b"not sqlite at all" * 100


def _files(folder):
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in folder.iterdir()}


# --- malformed and unusual files: the plain reader declines, or gives exactly GDAL's values --------------------

HEADER = b"GP\x00\x01" + (32633).to_bytes(4, "little")  # little-endian, no envelope
SQUARE_WKB = shapely.to_wkb(shapely.box(0, 0, 10, 10))


def _raw(path, *statements):
    """SQL run on the file by SQLite itself, the GeoPackage's R-tree triggers dropped first."""
    with sqlite3.connect(path) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f'DROP TRIGGER "{name}"')
        for statement in statements:
            db.execute(statement)


def _one_geometry(path, blob):
    write_layer(path, [(SQUARE, {"crop": 1}), (SQUARE, {"crop": 2})], _fields(("crop", "int64")))
    _raw(path, f"UPDATE parcels SET geom = X'{blob.hex()}' WHERE fid = 1")


def _multi(*members):
    return b"\x01\x06\x00\x00\x00" + len(members).to_bytes(4, "little") + b"".join(members)


def _own_table(path, create, rows, srs_id=4326):
    """A table GDAL did not write, registered as the GeoPackage's feature layer 'parcels'."""
    from osgeo import ogr

    ogr.GetDriverByName("GPKG").CreateDataSource(str(path)).FlushCache()
    blob = (HEADER + SQUARE_WKB).hex()
    _raw(path, create, *(f"INSERT INTO parcels VALUES ({row.format(blob=blob)})" for row in rows),
         f"INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES ('parcels', 'features', "
         f"'parcels', {srs_id})",
         f"INSERT INTO gpkg_geometry_columns VALUES ('parcels', 'geom', 'POLYGON', {srs_id}, 0, 0)")


def _srs(path, epsg, *statements):
    write_layer(path, [(SQUARE, {"crop": 1})], _fields(("crop", "int64")), epsg=epsg)
    _raw(path, *statements)


MALFORMED = {
    "bytes after the wkb": lambda p: _one_geometry(p, HEADER + SQUARE_WKB + bytes(4)),
    "big-endian member": lambda p: _one_geometry(p, HEADER + _multi(shapely.to_wkb(SQUARE, byte_order=0))),
    "3d member": lambda p: _one_geometry(p, HEADER + _multi(shapely.to_wkb(
        shapely.Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 0, 1)]), flavor="iso"))),
    "linestring member": lambda p: _one_geometry(p, HEADER + _multi(shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)])))),
    "cut short": lambda p: _one_geometry(p, HEADER + SQUARE_WKB[:20]),
    "ring count past the end": lambda p: _one_geometry(p, HEADER + b"\x01\x03\x00\x00\x00\xff\xff\xff\xff"),
    "envelope longer than the blob": lambda p: _one_geometry(p, b"GP\x00\x03" + bytes(4) + SQUARE_WKB[:20]),
    "empty member": lambda p: _one_geometry(p, HEADER + _multi(b"\x01\x03\x00\x00\x00" + bytes(4))),
    "big-endian header": lambda p: _one_geometry(p, b"GP\x00\x00" + (32633).to_bytes(4, "big") + SQUARE_WKB),
    "a number and text in the geometry column": lambda p: (_one_geometry(p, HEADER + SQUARE_WKB),
                                                           _raw(p, "UPDATE parcels SET geom = 7 WHERE fid = 1",
                                                                "UPDATE parcels SET geom = 'GP' WHERE fid = 2")),
    "int64 past 2**53 beside a null": lambda p: write_layer(p, [(SQUARE, {"crop": 2**53 + 1}), (SQUARE, {"crop": None})],
                                                            _fields(("crop", "int64"))),
    "text with a nul": lambda p: (write_layer(p, [(SQUARE, {"crop": "a"})], _fields(("crop", "text"))),
                                  _raw(p, "UPDATE parcels SET crop = 'ab' || char(0) || 'cd'")),
    "an attribute table beside": lambda p: (write_layer(p, [(SQUARE, {"crop": 1})], _fields(("crop", "int64"))),
                                            _raw(p, "CREATE TABLE aaa (fid INTEGER PRIMARY KEY, crop INTEGER)",
                                                 "INSERT INTO aaa VALUES (1, 99)",
                                                 "INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                                                 "VALUES ('aaa', 'attributes', 'aaa')")),
    "epsg code under another srs_id": lambda p: _srs(
        p, 32633, "INSERT INTO gpkg_spatial_ref_sys VALUES ('utm', 100000, 'EPSG', 32633, 'undefined', NULL)",
        "UPDATE gpkg_geometry_columns SET srs_id = 100000", "UPDATE gpkg_contents SET srs_id = 100000"),
    "srs labelled with another code": lambda p: _srs(  # GDAL reads the definition: EPSG:4326
        p, 32633, "UPDATE gpkg_spatial_ref_sys SET organization_coordsys_id = 4326, definition = (SELECT definition "
                  "FROM gpkg_spatial_ref_sys WHERE srs_id = 4326) WHERE srs_id = 32633"),
    "epsg code unknown to proj": lambda p: _srs(
        p, 32633, "INSERT INTO gpkg_spatial_ref_sys SELECT 'x', 999999, 'EPSG', 999999, definition, NULL "
                  "FROM gpkg_spatial_ref_sys WHERE srs_id = 32633",
        "UPDATE gpkg_geometry_columns SET srs_id = 999999", "UPDATE gpkg_contents SET srs_id = 999999"),
    "composite key": lambda p: _own_table(p, "CREATE TABLE parcels (pid INTEGER, part TEXT, geom POLYGON, crop INTEGER, "
                                             "PRIMARY KEY (pid, part))", ["50, 'a', X'{blob}', 1", "10, 'b', X'{blob}', 2"]),
    "key declared desc": lambda p: _own_table(p, "CREATE TABLE parcels (fid INTEGER PRIMARY KEY DESC, geom POLYGON, "
                                                 "crop INTEGER)", ["50, X'{blob}', 1", "10, X'{blob}', 2"]),
    "without rowid": lambda p: _own_table(p, "CREATE TABLE parcels (fid INTEGER PRIMARY KEY, geom POLYGON, crop INTEGER) "
                                             "WITHOUT ROWID", ["50, X'{blob}', 1", "10, X'{blob}', 2"]),
    "rowid key written out of order": lambda p: _own_table(p, "CREATE TABLE parcels (fid INTEGER PRIMARY KEY, "
                                                              "geom POLYGON, crop INTEGER)",
                                                           ["50, X'{blob}', 1", "10, X'{blob}', 2"]),
}


@pytest.mark.filterwarnings("ignore:More than one layer found", "ignore:Unable to parse srs_id")  # pyogrio's
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_or_unusual_file_is_declined_or_read_exactly_as_gdal_reads_it(tmp_path, case):
    path = tmp_path / "case.gpkg"
    MALFORMED[case](path)
    found = read_plain_geopackage(str(path), None, ["crop"])
    try:
        expected = gdal_values(PolygonFile(str(path), "crop"), ["crop"])
    except Exception as exc:  # what GDAL refuses, the plain reader must not read
        assert found is None, f"GDAL refuses the file ({exc}), the plain reader read it"
        return
    assert found is None or found == expected
    if case in ("empty member", "big-endian header", "rowid key written out of order"):
        assert found == expected  # plain after all: read here, in GDAL's order
