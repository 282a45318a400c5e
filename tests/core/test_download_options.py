"""The download's job spec: plain values, an exact JSON round trip, one-sentence errors, no secret."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from satplugin.qgis_satplugin.core.area import Area
from satplugin.qgis_satplugin.core.download import DownloadOptions, DownloadResult, product_records, run
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.qgis_satplugin.core.search.catalog import CatalogBackend
from satplugin.qgis_satplugin.core.search.local import scan_folder
from tests.servers import s2_world
from tests.servers.download_checks import assert_only_complete_files, folder_hashes
from tests.servers.items import catalog_item
from tests.servers.process_api import Acquisition, ProcessApiServer

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

UTC = timezone.utc
WHEN = datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC)
SECRET = "options-must-not-hold-this-secret"


@pytest.fixture(scope="module")
def cogs(tmp_path_factory):
    """One local COG product (B04 and SCL, baseline 05.09)."""
    root = tmp_path_factory.mktemp("cogs")
    s2_world.make_cog_product(root, when=WHEN, baseline="05.09", bands=("B04", "SCL"))
    return scan_folder(root)


def full_options(products, folder) -> DownloadOptions:
    """Every option away from its default."""
    return DownloadOptions(
        products=products,
        output_folder=str(folder),
        bands=("B04",),
        area=Area.from_geometry(s2_world.aoi_4326(), "EPSG:4326"),
        pixel_size=20.0,
        reference_grid=None,
        include_masks=False,
        harmonize=False,
        max_concurrent=2,
        service_url="https://services.example.invalid",
        token_url="https://services.example.invalid/token",
        request_deadline=120.0,
        run_deadline=3600.0,
        max_request_px=512,
    )


def test_options_round_trip_through_json_and_run_the_same(cogs, tmp_path):
    options = full_options(cogs, tmp_path / "a")
    assert all(isinstance(r, dict) for r in options.products)  # Product objects became plain records
    text = options.to_json()
    assert json.loads(text)["options"] == "DownloadOptions"
    back = DownloadOptions.from_json(text)
    assert back == options
    assert isinstance(back.products, tuple) and isinstance(back.bands, tuple) and isinstance(back.area, Area)
    assert back.area.geometry().equals_exact(s2_world.aoi_4326(), 0.0)
    assert DownloadOptions(**{**back.__dict__, "products": back.products}) == back  # records read back as themselves
    assert DownloadOptions(**{**back.__dict__, "products": list(product_records(cogs))}) == back

    first = run(options)
    second = run(DownloadOptions.from_json(text.replace(str(tmp_path / "a"), str(tmp_path / "b"))))
    assert folder_hashes(tmp_path / "a") == folder_hashes(tmp_path / "b")
    assert_only_complete_files(tmp_path / "b")
    one, two = first.to_dict(), second.to_dict()
    assert json.loads(json.dumps(one)) == one  # plain JSON values
    assert one.pop("output_folder") != two.pop("output_folder")
    assert one.pop("manifest_path") != two.pop("manifest_path")
    assert one == two and one["bands"] == ["B04"] and one["grid"]["pixel_width"] == 20.0 and len(one["dates"]) == 1


def test_a_reference_grid_nests_as_it_is(cogs, tmp_path):
    grid = PixelGrid.square("EPSG:32633", 500520.0, 5096400.0, 20.0, 30, 20)
    options = DownloadOptions(products=cogs, output_folder=tmp_path, bands=["B04"], reference_grid=grid)
    assert options.output_folder == str(tmp_path) and options.bands == ("B04",) and options.area is None
    back = DownloadOptions.from_json(options.to_json())
    assert back == options and isinstance(back.reference_grid, PixelGrid)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"products": ()}, r"^No products to download: select some in the search result, or relax the search\.$"),
        ({"bands": ("B99",)}, r"^Unknown Sentinel-2 band 'B99'; use names like B02, B8A or B11\.$"),
        ({"bands": ("B10",)}, r"^B10 \(cirrus\) exists only in L1C products; remove it or download L1C products\.$"),
        ({"bands": ("B05",)}, r"^Product .* has no B05 file \(it has: B04, SCL\)\.$"),
        ({"area": None}, r"^Give an area of interest or a reference grid\.$"),
        ({"pixel_size": 0.0}, r"^Pixel size must be a positive number, got 0\.0\.$"),
        ({"output_folder": ""}, r"^Choose an output folder for the downloaded images\.$"),
        ({"run_deadline": 0.0}, r"^RUN_DEADLINE must be a positive number of seconds, not 0\.0\.$"),
        ({"max_request_px": 0}, r"^The largest request must be at least 1 pixel per side, not 0\.$"),
    ],
)
def test_bad_options_are_one_sentence_each(cogs, tmp_path, change, message):
    values = {"products": cogs, "output_folder": str(tmp_path), "bands": ("B04",),
              "area": Area.from_geometry(s2_world.aoi_4326()), **change}
    with pytest.raises(SatPluginError, match=message):
        DownloadOptions(**values)
    assert list(tmp_path.iterdir()) == []


def test_a_json_spec_with_an_unknown_option_is_refused(cogs, tmp_path):
    text = json.loads(full_options(cogs, tmp_path).to_json())
    with pytest.raises(SatPluginError, match="DownloadOptions has no option credentials"):
        DownloadOptions.from_dict({**text, "credentials": ["id", SECRET]})


def test_the_secret_is_a_run_argument_never_an_option(monkeypatch, tmp_path):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    creds = ("test-client", SECRET)
    item = catalog_item(when=WHEN, baseline="05.09", tile="33TWM", geometry=s2_world.footprint_4326())
    with ProcessApiServer([Acquisition(WHEN, "05.09")], items=[item], client_secret=SECRET) as server:
        products = CatalogBackend(server.url, server.token_url, creds).search(
            s2_world.aoi_4326(), datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 30, tzinfo=UTC), "L2A"
        )
        options = DownloadOptions(products=products, output_folder=str(tmp_path / "out"), bands=("B04",),
                                  area=Area.from_geometry(s2_world.aoi_4326()), include_masks=False,
                                  service_url=server.url, token_url=server.token_url)
        with pytest.raises(TypeError):
            DownloadOptions(**{**options.__dict__, "credentials": creds})  # there is no such option
        lines = []
        result = run(options, Feedback(log=lines.append), credentials=creds)
    assert isinstance(result, DownloadResult) and result.written == [result.files[0]["path"]]
    text = options.to_json()
    assert SECRET not in text and "test-client" not in text
    assert DownloadOptions.from_json(text) == options
    assert SECRET not in json.dumps(result.to_dict()) and not any(SECRET in line for line in lines)
    assert SECRET not in (tmp_path / "out" / "manifest.json").read_text()


def test_every_option_is_described():
    names = [name for name, _ in DownloadOptions.help_lines()]
    assert names == list(DownloadOptions.__dataclass_fields__)
    assert all(text and not text.endswith(".") for _, text in DownloadOptions.help_lines())  # the help adds the stop
