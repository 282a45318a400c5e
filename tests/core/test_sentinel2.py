"""The Sentinel-2 facts in core/sentinel2.py: their values, and that no other module keeps a copy."""
import re
from pathlib import Path

import pytest

from satplugin.qgis_satplugin.core import sentinel2 as s2
from satplugin.qgis_satplugin.core.search import CLOUD_CLASSES
from satplugin.qgis_satplugin.core.superres.contract import band_match_key as contract_band

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "qgis_satplugin" / "core"

L1C = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def test_band_lists_in_esa_order():
    assert list(s2.L1C_BANDS) == L1C
    assert list(s2.L2A_BANDS) == [b for b in L1C if b != "B10"]  # no cirrus band in L2A
    assert s2.PRODUCT_LAYERS == (*L1C, "SCL")


def test_native_resolutions():
    assert s2.NATIVE_RESOLUTION_M["B8A"] == 20
    assert s2.NATIVE_RESOLUTION_M == {
        "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
        "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20,
    }


def test_scl_cloud_classes_and_mask_values():
    # 3 cloud shadow, 8 and 9 cloud (medium, high probability), 10 thin cirrus.
    assert s2.SCL_CLOUD_CLASSES == (3, 8, 9, 10)
    assert CLOUD_CLASSES == (3, 8, 9, 10)  # the search's public name for them
    assert s2.MASK_CLOUD_VALUES == {"SCL": (3, 8, 9, 10), "CLM": (1,)}
    assert s2.MASK_NODATA == {"SCL": 0, "CLM": 255}
    assert (s2.SCL_NO_DATA, s2.SCL_VEGETATION, s2.SCL_NOT_VEGETATED) == (0, 4, 5)
    assert (s2.CLM_CLEAR, s2.CLM_CLOUD, s2.CLM_NO_DATA) == (0, 1, 255)


@pytest.mark.parametrize("spelling, band", [
    ("B02", "B02"), ("B2", "B02"), ("b02", "B02"), ("b2", "B02"), (" B02 ", "B02"),
    ("B8A", "B8A"), ("B8a", "B8A"), ("b8a", "B8A"), ("b8A", "B8A"), ("B10", "B10"), ("B12", "B12"),
])
def test_band_number_spellings(spelling, band):
    assert s2.canonical_band_name(spelling) == band
    assert s2.canonical_band(spelling) == band
    assert contract_band(spelling) == band


@pytest.mark.parametrize("name", ["", None, "B00", "B13", "B08A", "B 2", "B", "8A", "SCL", "red", "B02.tif"])
def test_strict_reading_takes_band_numbers_only(name):
    assert s2.canonical_band_name(name) is None


@pytest.mark.parametrize("name, band", [
    ("blue", "B02"), ("RED", "B04"), ("nir", "B08"), ("nir08", "B8A"), ("swir22", "B12"), ("cirrus", "B10"),
    ("scl", "SCL"), ("SCL", "SCL"), ("B02.tif", "B02"), ("B8A.TIFF", "B8A"), ("b8a.jp2", "B8A"),
    ("blue-jp2", "B02"), ("SCL.tif", "SCL"),
])
def test_lenient_reading_takes_asset_and_file_names(name, band):
    assert s2.canonical_band(name) == band


@pytest.mark.parametrize("name", ["B13", "B00", "rgb", "B02.png", "visual"])
def test_lenient_reading_refuses_unknown_names(name):
    assert s2.canonical_band(name) is None


def test_contract_keeps_other_names_upper_cased():
    # A model's "red" may be another sensor's red: not read as B04.
    assert contract_band(" red ") == "RED"
    assert contract_band("scl") == "SCL"


def test_baselines():
    assert [s2.format_baseline(v) for v in ("N0214", "0214", "2.14", "02.14", "", None)] == [
        "02.14", "02.14", "02.14", "02.14", None, None]
    assert s2.baseline_key("04.00") == s2.OFFSET_BASELINE == (4, 0)
    assert s2.baseline_key(None) == s2.baseline_key("x") == (-1, -1)
    assert s2.BOA_OFFSET_DN == 1000
    assert s2.REFLECTANCE_SCALE == 0.0001


# Literal copies of the facts, as they were written in the modules before sentinel2.py.
COPIES = {
    "SCL cloud classes": r"\(\s*3\s*,\s*8\s*,\s*9\s*,\s*10\s*\)",
    "a native-resolution table": r"[\"']B8A[\"']\s*:\s*20\b",
    "SCL no-data": r"[\"']SCL[\"']\s*:\s*0\b",
    "CLM no-data": r"[\"']CLM[\"']\s*:\s*255\b",
    "the L1C band list": r"[\"']B09[\"']\s*,\s*[\"']B10[\"']\s*,\s*[\"']B11[\"']",
    "the L2A band list": r"[\"']B09[\"']\s*,\s*[\"']B11[\"']",
    "the bands at 20 m": r"[\"']B07[\"']\s*,\s*[\"']B8A[\"']\s*,\s*[\"']B11[\"']",
    "the reflectance scale": r"(?m)^\s*[A-Z_]*SCALE[A-Z_]*\s*=\s*(0\.0001|1e-4)\b|reflectance_scale[\"']\s*:\s*0\.0001",
    "the band-number rule": r"8\[aA\]|\|8a\)",
    "the common-name table": r"[\"']nir08[\"']\s*:",
    "the baseline offset": r"(?i)(offset|baseline)\w*\s*=\s*(1000\b|\(\s*4\s*,\s*0\s*\)|[\"']04\.00[\"'])",
}


def test_no_other_module_keeps_a_copy_of_the_facts():
    sources = [p for p in CORE.rglob("*.py") if p.name != "sentinel2.py"] + [ROOT / "models" / "worldstrat.py"]
    found = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for what, pattern in COPIES.items():
            for m in re.finditer(pattern, text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not found, "Sentinel-2 facts written outside core/sentinel2.py:\n" + "\n".join(found)


def test_the_patterns_find_the_facts_in_sentinel2():
    text = (CORE / "sentinel2.py").read_text(encoding="utf-8")
    for what in ("a native-resolution table", "the L1C band list", "the band-number rule", "the common-name table"):
        assert re.search(COPIES[what], text), what
