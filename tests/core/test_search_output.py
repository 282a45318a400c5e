"""The GeoPackage footprint layer, and a full search with AOI cloud read over HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import shapely
from pyogrio import read_info
from pyogrio.raw import read
from shapely.geometry import box

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.search import (
    GPKG_FIELDS,
    Product,
    StacBackend,
    write_footprints_gpkg,
)
from tests.servers.files import RangeFileServer
from tests.servers.items import stac_item
from tests.servers.product_folders import cog_footprint_4326, cog_quadrant_4326, make_cog_folder
from tests.servers.stac_api import StacApiServer
from satplugin.tests.fixtures.step_runs import search

UTC = timezone.utc


EXPECTED_FIELDS = [
    "product_id",
    "datetime",
    "platform",
    "mgrs_tile",
    "rel_orbit",
    "baseline",
    "collection",
    "cloud",
    "aoi_cover",
    "aoi_cloud",
    "rank",
    "selected",
    "backend",
    "download",
    "acq_group",
]


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def is_null(value) -> bool:
    """pyogrio reads NULL as None (text) or NaN (numbers)."""
    return value is None or value != value


def read_layer(path):
    meta, _fids, geometry, values = read(str(path))
    rows = [dict(zip(meta["fields"], row, strict=True)) for row in zip(*values, strict=True)] if len(values) else []
    return meta, [shapely.from_wkb(g) if g is not None else None for g in geometry], rows


def sample_products():
    fp = box(0, 0, 2, 2)
    a = Product(
        "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947",
        datetime(2020, 2, 19, 11, 34, 25, 405000, tzinfo=UTC),
        "S2A",
        "29RKH",
        37,
        "02.14",
        "L2A",
        4.05,
        fp,
        "earth_search",
        {"kind": "stac", "assets": {"B02": "https://h/B02.tif"}},
    )
    a.aoi_coverage, a.aoi_cloud, a.rank, a.selected = 50.0, 1.25, 1, True
    a.aoi_footprint = box(1, 0, 2, 1)
    b = Product(
        "S2B_MSIL1C_20200224T112111_N0500_R037_T29RKH_20230101T000000",
        datetime(2020, 2, 24, 11, 34, tzinfo=UTC),
        "S2B",
        "29RKH",
        None,
        None,
        "L1C",
        None,
        fp,
        "local",
        {"kind": "local", "path": "/data/x.SAFE", "assets": {}},
    )
    b.aoi_coverage, b.rank, b.selected = 100.0, 2, False
    b.aoi_footprint = shapely.MultiPolygon([box(0, 0, 1, 1), box(1.5, 1.5, 2, 2)])
    return [a, b]


def test_gpkg_fields_values_and_geometry(tmp_path):
    path = tmp_path / "result.gpkg"
    assert write_footprints_gpkg(sample_products(), path) == str(path)
    info = read_info(str(path))
    assert list(info["fields"]) == EXPECTED_FIELDS == list(GPKG_FIELDS)
    assert info["crs"] == "EPSG:4326"
    assert info["geometry_type"] == "MultiPolygon"
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))
    assert types["rel_orbit"] == types["rank"] == types["selected"] == "OFTInteger"
    assert types["cloud"] == types["aoi_cover"] == types["aoi_cloud"] == "OFTReal"
    assert types["download"] == types["datetime"] == "OFTString"

    _meta, geoms, rows = read_layer(path)
    a, b = rows
    assert a["product_id"] == "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947"
    assert a["datetime"] == "2020-02-19T11:34:25.405000Z"
    assert (a["platform"], a["mgrs_tile"], a["rel_orbit"], a["baseline"], a["collection"]) == (
        "S2A",
        "29RKH",
        37,
        "02.14",
        "L2A",
    )
    assert (a["cloud"], a["aoi_cover"], a["aoi_cloud"], a["rank"], a["selected"]) == (4.05, 50.0, 1.25, 1, 1)
    assert a["backend"] == "earth_search"
    assert json.loads(a["download"]) == {"kind": "stac", "assets": {"B02": "https://h/B02.tif"}}
    assert a["acq_group"] == "2020-02-19_R037"
    assert geoms[0].equals(box(1, 0, 2, 1))  # the clipped footprint, not the tile
    assert geoms[0].geom_type == "MultiPolygon"

    # Unknown values are NULL, not 0 or "".
    assert is_null(b["rel_orbit"]) and is_null(b["cloud"]) and is_null(b["aoi_cloud"])
    assert b["baseline"] is None
    assert b["selected"] == 0
    assert b["acq_group"] == "2020-02-24_R???"
    assert geoms[1].area == pytest.approx(1.25)


def test_gpkg_nulls_read_as_null_by_ogr(tmp_path):
    osgeo_ogr = pytest.importorskip("osgeo.ogr")
    path = tmp_path / "result.gpkg"
    write_footprints_gpkg(sample_products(), path)
    ds = osgeo_ogr.Open(str(path))
    feats = list(ds.GetLayer(0))
    assert feats[1].IsFieldNull("rel_orbit") and feats[1].IsFieldNull("aoi_cloud") and feats[1].IsFieldNull("cloud")
    assert not feats[0].IsFieldNull("aoi_cloud")
    assert feats[0].GetField("rel_orbit") == 37


def test_empty_gpkg_is_a_valid_layer_with_all_fields(tmp_path):
    path = tmp_path / "empty.gpkg"
    write_footprints_gpkg([], path)
    info = read_info(str(path))
    assert info["features"] == 0
    assert list(info["fields"]) == EXPECTED_FIELDS
    assert info["geometry_type"] == "MultiPolygon"
    assert info["crs"] == "EPSG:4326"


def test_gpkg_replaces_atomically_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "result.gpkg"
    write_footprints_gpkg(sample_products(), path)
    write_footprints_gpkg(sample_products()[:1], path)  # overwrite
    assert read_info(str(path))["features"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.gpkg"]
    with pytest.raises(SatPluginError, match=".gpkg"):
        write_footprints_gpkg([], tmp_path / "result.shp")
    with pytest.raises(SatPluginError, match="does not exist"):
        write_footprints_gpkg([], tmp_path / "missing" / "x.gpkg")


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "result.gpkg"
    write_footprints_gpkg(sample_products(), path)
    import satplugin.qgis_satplugin.core.search.footprints_gpkg as module

    def broken_write(*args, **kwargs):
        with open(args[0], "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(module, "ogr_write", broken_write)
    # Issue 11: a failed write is one sentence for the user, not a raw OSError.
    with pytest.raises(SatPluginError, match="Could not write result.gpkg .* previous result, if any, is unchanged"):
        write_footprints_gpkg([], path)
    assert read_info(str(path))["features"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.gpkg"]


def test_full_search_with_aoi_cloud_over_http(tmp_path):
    """STAC search on one loopback server, SCL COGs read by range requests from another.

    The scene cloud says the June 2 product is best; the AOI cloud says it is the worst.
    """
    day = lambda d: datetime(2023, 6, d, 10, 15, tzinfo=UTC)  # noqa: E731
    make_cog_folder(tmp_path, when=day(12), name="patterned")  # 25 % over the AOI
    make_cog_folder(tmp_path, when=day(2), name="overcast", scl=np.full((200, 200), 9, dtype=np.uint8))
    aoi = cog_quadrant_4326(0, 0).buffer(-1e-6)
    with RangeFileServer(tmp_path) as files:
        items = [
            stac_item(
                tile="32TQM",
                when=day(12),
                cloud=30.0,
                geometry=cog_footprint_4326(),
                asset_base=f"{files.url}/patterned",
            ),
            stac_item(
                tile="32TQM", when=day(2), cloud=5.0, geometry=cog_footprint_4326(), asset_base=f"{files.url}/overcast"
            ),
            stac_item(
                tile="32TQM", when=day(22), cloud=10.0, geometry=cog_footprint_4326(), asset_base=f"{files.url}/missing"
            ),  # answers 404
        ]
        with StacApiServer(items) as stac:
            backend = StacBackend(stac.url, client_options={"sleep": Sleeps()})
            by_scene = search(backend, aoi, "2023-06-01", "2023-06-30")
            log = []
            by_aoi = search(backend, aoi, "2023-06-01", "2023-06-30", aoi_cloud=True, log=log.append)
    assert [p.datetime.day for p in by_scene] == [2, 22, 12]
    assert [p.datetime.day for p in by_aoi] == [22, 12, 2]
    assert [p.aoi_cloud for p in by_aoi] == [None, pytest.approx(25.0), pytest.approx(100.0)]
    assert any("could not read its SCL layer" in line for line in log)

    out = tmp_path / "out.gpkg"
    write_footprints_gpkg(by_aoi, out)
    _meta, _geoms, rows = read_layer(out)
    assert is_null(rows[0]["aoi_cloud"])
    assert [r["aoi_cloud"] for r in rows[1:]] == [25.0, 100.0]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["cloud"] for r in rows] == [10.0, 30.0, 5.0]
